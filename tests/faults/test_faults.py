"""Faults while the gate downloads and records: after each one, the next start never loads
a partial or unverified file, and the trusted state is intact (R3.4, R5).

Each test checks the same two things afterwards: nothing under a final name in
``<cache>/blobs/sha256/`` fails to hash to that name (partials live under ``.<hex>.partial``),
and the next, undisturbed start permits from verified bytes only.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from tests.attacks.helpers import (
    Arena,
    Gate,
    assert_cache_verified,
    assert_denied,
    cache_entries,
    cache_path,
)
from tests.attacks.hostile import Mitm
from tests.faults.crashgate import command
from tests.support.registry import make_test_env, start_registry
from trustload.decision import ReasonCode
from trustload.policy import policy_digest
from trustload.state import load_state

ROOT = Path(__file__).resolve().parents[2]
BIG = 3 * 1024 * 1024


def partials(gate: Gate) -> list[Path]:
    return [p for p in cache_entries(gate.cache_dir) if p.name.endswith(".partial")]


def next_start_is_clean(gate: Gate, ref: str, *, resumed: bool | None = None) -> None:
    result = gate.run(ref)
    assert result.decision.permitted, result.decision.to_json()
    assert_cache_verified(gate.cache_dir)
    assert partials(gate) == []
    if resumed is not None:
        download = next(c for c in result.decision.checks if c.name == "download")
        assert ("1 resumed" in download.detail) is resumed, download.detail


def publish_big(arena: Arena) -> tuple[str, str]:
    name = arena.name("big")
    rec = arena.publish(name, "1", arena.model_file(os.urandom(BIG)))
    return name, rec.artifact_digest.removeprefix("sha256:")


# ---------------------------------------------------------------- network faults


def test_registry_killed_mid_download(tmp_path: Path) -> None:
    """The Registry process is SIGKILLed after half the artifact went out; the gate denies,
    keeps only the hashed prefix under a temporary name, and resumes it after a restart."""
    from tests.attacks.helpers import Gate as G

    env = make_test_env(tmp_path / "env")
    with start_registry(env) as reg:
        arena = Arena(reg, env, tmp_path / "work", policy_digest=policy_digest(env.policy_dir))
        gate = G(arena, tmp_path / "gate")
        gate.root.mkdir()
        name, hexd = publish_big(arena)
        arena.admin().close()
        with Mitm(reg) as mitm:
            mitm.cut[hexd] = (None, BIG // 2, "close")
            mitm.after_cut = lambda: reg.stop(9)
            cfg = gate.via(mitm.url, retries=1, connect_timeout=1.0)
            result = gate.run(f"{name}@production", cfg)
    assert_denied(result, ReasonCode.REGISTRY_UNAVAILABLE, cache_dir=gate.cache_dir)
    assert not cache_path(gate, f"sha256:{hexd}").exists()
    with start_registry(env):  # same database and blob store, new port
        next_start_is_clean(gate, f"{name}@production", resumed=True)


def test_connection_reset_mid_body_is_resumed(arena: Arena, gate: Gate) -> None:
    """A TCP reset after half the body: the gate resumes with Range from the hashed prefix."""
    name, hexd = publish_big(arena)
    with Mitm(arena.reg) as mitm:
        mitm.cut[hexd] = (None, BIG // 2, "reset")

        def once() -> None:
            mitm.cut.pop(hexd, None)

        mitm.after_cut = once
        result = gate.run(f"{name}@production", gate.via(mitm.url))
    assert result.decision.permitted, result.decision.to_json()
    resumes = [r for r in mitm.ranges if r and r != "bytes=0-"]
    assert resumes and int(resumes[0].removeprefix("bytes=").rstrip("-")) > 0, mitm.ranges
    assert_cache_verified(gate.cache_dir)


def test_connection_reset_every_time_is_denied(arena: Arena, gate: Gate) -> None:
    """Every attempt is reset: denied after the bounded retries, no final blob, and the
    next start resumes the kept prefix."""
    name, hexd = publish_big(arena)
    with Mitm(arena.reg) as mitm:
        mitm.cut[hexd] = (None, BIG // 3, "reset")
        result = gate.run(f"{name}@production", gate.via(mitm.url, retries=1))
    assert_denied(result, ReasonCode.REGISTRY_UNAVAILABLE, cache_dir=gate.cache_dir)
    assert not cache_path(gate, f"sha256:{hexd}").exists() and partials(gate)
    next_start_is_clean(gate, f"{name}@production", resumed=True)


@pytest.mark.parametrize(("label", "announced"), [("short", BIG // 2), ("long", BIG + 4096)])
def test_wrong_content_length(arena: Arena, gate: Gate, label: str, announced: int) -> None:
    """Content-Length lies (half the size; more than the record): DIGEST_MISMATCH, nothing kept."""
    name, hexd = publish_big(arena)
    with Mitm(arena.reg) as mitm:
        mitm.cut[hexd] = (announced, min(announced, BIG), "close")
        result = gate.run(f"{name}@production", gate.via(mitm.url, retries=0))
    assert_denied(result, ReasonCode.DIGEST_MISMATCH, cache_dir=gate.cache_dir)
    assert not cache_path(gate, f"sha256:{hexd}").exists() and partials(gate) == []
    next_start_is_clean(gate, f"{name}@production", resumed=False)


# ------------------------------------------------------------------- disk full


def test_disk_full_while_writing_the_cache(arena: Arena, gate: Gate) -> None:
    """Method: the cache directory is a 1 MiB tmpfs the test mounts (root only; skipped
    with the reason otherwise) and the artifact is 3 MiB, so the partial write hits
    ENOSPC. After the denial the test grows the tmpfs (``remount,size=16m``: the disk was
    freed) and the next start must resume and permit from verified bytes only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; disk-full is exercised only as root")
    gate.cache_dir.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(gate.cache_dir)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs not permitted here: {mounted.stderr.strip()}")
    try:
        name, hexd = publish_big(arena)
        result = gate.run(f"{name}@production", gate.via(arena.reg.url, retries=0))
        assert_denied(result, ReasonCode.REGISTRY_UNAVAILABLE, cache_dir=gate.cache_dir)
        assert "No space left" in json.dumps(result.decision.to_json())
        assert not cache_path(gate, f"sha256:{hexd}").exists()
        subprocess.run(["mount", "-o", "remount,size=16m", str(gate.cache_dir)], check=True)
        next_start_is_clean(gate, f"{name}@production")
    finally:
        subprocess.run(["umount", "-l", str(gate.cache_dir)], check=False)


# ------------------------------------------------------------- the gate killed


def crash(gate: Gate, ref: str, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(gate, ref, mode),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize("mode", ["cache-write", "cache-rename"])
def test_gate_sigkilled_while_writing_the_cache(arena: Arena, gate: Gate, mode: str) -> None:
    """SIGKILL after the first downloaded chunk / just before the verified rename: no
    final-name blob exists, and the next start resumes from the partial and permits."""
    name, hexd = publish_big(arena)
    proc = crash(gate, f"{name}@production", mode)
    assert proc.returncode == -9, proc.stderr + proc.stdout
    assert not cache_path(gate, f"sha256:{hexd}").exists()
    assert_cache_verified(gate.cache_dir)
    next_start_is_clean(gate, f"{name}@production", resumed=True)


@pytest.mark.parametrize("mode", ["state-fsync", "state-rename"])
def test_gate_sigkilled_while_writing_trusted_state(arena: Arena, gate: Gate, mode: str) -> None:
    """v1 is trusted; the gate is SIGKILLed while recording v2 as trusted. The state must
    still say v1 (never half-written), and the next start moves it to v2."""
    name = arena.good()
    state_dir = gate.root / "state"
    assert gate.run(f"{name}@production").decision.permitted
    before = load_state(state_dir, name, "prod")
    assert before is not None and before.version == "1"
    arena.publish(name, "2", arena.model_file())
    proc = crash(gate, f"{name}@production", mode)
    assert proc.returncode == -9, proc.stderr + proc.stdout
    orphans = [p.name for p in state_dir.iterdir() if p.name.endswith(".part")]
    assert orphans, "the kill left no temp file: the test would prove nothing"
    assert load_state(state_dir, name, "prod") == before  # intact, parseable, unchanged
    next_start_is_clean(gate, f"{name}@production")
    after = load_state(state_dir, name, "prod")
    assert after is not None and after.version == "2"
    # Only the final name is ever read, and there is exactly one, complete and parseable;
    # the killed writer's temp file (".trusted-*.part") was removed by the next start.
    finals = [p for p in state_dir.iterdir() if p.name.startswith("trusted-")]
    assert len(finals) == 1 and json.loads(finals[0].read_text())["version"] == "2"
    assert not [p.name for p in state_dir.iterdir() if p.name.endswith(".part")]


# ------------------------------------------------------------ shared cache


def test_two_gates_share_one_cache(arena: Arena, gate: Gate) -> None:
    """Two gate processes verify the same model into one cache at the same moment: both
    permit, the cache holds each blob once, verified, with no partial left over."""
    name, hexd = publish_big(arena)
    procs = [
        subprocess.Popen(
            command(gate, f"{name}@production", "none", state=f"state-{i}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o[0].strip() for o in outs] == ["permit", "permit"]
    assert cache_path(gate, f"sha256:{hexd}").exists()
    assert_cache_verified(gate.cache_dir)
    assert partials(gate) == []
    next_start_is_clean(gate, f"{name}@production", resumed=False)


def test_threads_of_one_gate_share_one_cache(arena: Arena, gate: Gate) -> None:
    """Four concurrent gate runs in one process (the serving runtime's refresh + start)."""
    name, _ = publish_big(arena)
    results: list[bool] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(gate.run(f"{name}@production").decision.permitted)
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [True] * 4
    assert_cache_verified(gate.cache_dir)
