"""``trustload fetch``: KServe's storage-initializer contract, end to end over mTLS."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.attacks.helpers import Arena, card
from tests.fetch.conftest import Fetcher, tree_files
from trustload.decision import ReasonCode
from trustload.fetch import MAX_TERMINATION_BYTES


def _assert_read_only_tree(dest: Path) -> None:
    for p in dest.rglob("*"):
        mode = stat.S_IMODE(os.lstat(p).st_mode)
        assert not p.is_symlink(), p
        assert mode == (0o555 if p.is_dir() else 0o444), (p, oct(mode))


def _assert_empty(dest: Path) -> None:
    assert not dest.exists() or os.listdir(dest) == [], os.listdir(dest)


def test_permit_writes_the_verified_read_only_tree(fetcher: Fetcher, tmp_path: Path) -> None:
    arena = fetcher.arena
    name = arena.name("dir")
    files = {"model.onnx": os.urandom(50_000), "cfg/tok.json": b"{}", "cfg/sub/v.txt": b"v"}
    rec = arena.publish(name, "1", arena.model_dir(files))
    dest = tmp_path / "mnt" / "models"
    proc = fetcher.run(f"trustload://{name}@production", str(dest))
    assert proc.returncode == 0, proc.stderr
    doc = fetcher.decision(proc)
    assert doc["decision"] == "permit" and doc["version"] == "1"
    assert doc["artifact_digest"] == rec.artifact_digest
    # Exactly the manifest's files, each hashing to its pinned digest; nothing else.
    assert tree_files(dest) == {f.path: f.sha256 for f in rec.files}
    assert sorted(os.listdir(dest)) == ["cfg", "model.onnx"]  # no .trustload-tmp left
    _assert_read_only_tree(dest)
    # The forced cache lived in DEST/.trustload-tmp: the configured cache_dir was unused.
    assert not Path("/nonexistent/trustload-cache").exists()
    # One audit line: the outcome as published.
    lines = fetcher.audit_log.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["decision"] == "permit"
    term = fetcher.termination_log.read_bytes()
    assert len(term) <= MAX_TERMINATION_BYTES
    summary = json.loads(term)
    assert summary["decision"] == "permit"
    (model,) = summary["models"]
    assert model["model"] == name and model["version"] == "1"
    assert model["artifact_digest"] == rec.artifact_digest and model["reasons"] == []


def test_permit_single_file_model_and_several_pairs(fetcher: Fetcher, tmp_path: Path) -> None:
    arena = fetcher.arena
    a, b = arena.good(), arena.good()
    d1, d2 = tmp_path / "a", tmp_path / "b"
    proc = fetcher.run(f"trustload://{a}@production", str(d1), f"trustload://{b}@1", str(d2))
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert [d["decision"] for d in docs] == ["permit", "permit"]
    assert os.listdir(d1) == ["model.onnx"] and os.listdir(d2) == ["model.onnx"]
    _assert_read_only_tree(d1)


def _tampered(arena: Arena) -> tuple[str, ReasonCode]:
    name = arena.name("tamper")
    rec = arena.publish(name, "1", arena.model_file())
    blob = arena.reg.blob_path(rec.artifact_digest)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    return name, ReasonCode.DIGEST_MISMATCH


def _revoked(arena: Arena) -> tuple[str, ReasonCode]:
    name = arena.good()
    arena.admin().revoke(name, "1", "CVE in the tokenizer")
    return name, ReasonCode.REVOKED


def _staging(arena: Arena) -> tuple[str, ReasonCode]:
    name = arena.name("stage")
    arena.publish(name, "1", arena.model_file(), stage="Staging")
    return name, ReasonCode.STAGE_NOT_ALLOWED


def _tenant_b_token(arena: Arena) -> tuple[str, ReasonCode, str]:
    """Wrong tenant: a tenant-B token asks for tenant A's model; the Registry answers as
    for a model nobody has (tenancy: no oracle), so the fetch denies NOT_FOUND."""
    from tests.attacks.test_identity import claims

    return arena.good(), ReasonCode.NOT_FOUND, arena.env.raw_token(claims(arena, tenant_id="B"))


def _purpose(arena: Arena) -> tuple[str, ReasonCode]:
    name = arena.name("purpose")
    arena.publish(name, "1", arena.model_file(), card_doc=card(purposes=("marketing",)))
    return name, ReasonCode.PURPOSE_NOT_ALLOWED


def _bad_signature(arena: Arena) -> tuple[str, ReasonCode]:
    name = arena.name("sig")
    path = arena.model_file()
    signed = arena.sign(arena.model_file())  # evidence for other bytes
    arena.publish(name, "1", path, signed=signed)
    return name, ReasonCode.SIGNATURE_INVALID


def _unknown(arena: Arena) -> tuple[str, ReasonCode]:
    return arena.name("nobody"), ReasonCode.NOT_FOUND


@pytest.mark.parametrize(
    "setup",
    [
        _tampered,
        _revoked,
        _staging,
        _tenant_b_token,
        _purpose,
        _bad_signature,
        _unknown,
    ],
)
def test_deny_exits_1_and_leaves_dest_empty(fetcher: Fetcher, tmp_path: Path, setup) -> None:
    name, code, *token = setup(fetcher.arena)
    if token:
        (fetcher.root / "etc" / "token").write_text(token[0])
    dest = tmp_path / "models"
    proc = fetcher.run(f"trustload://{name}@production", str(dest))
    assert proc.returncode == 1, proc.stderr
    doc = fetcher.decision(proc)
    assert doc["decision"] == "deny" and code in doc["reasons"], doc["reasons"]
    _assert_empty(dest)
    summary = json.loads(fetcher.termination_log.read_bytes())
    assert summary["decision"] == "deny" and code in summary["models"][0]["reasons"]
    audit = [json.loads(x) for x in fetcher.audit_log.read_text().splitlines()]
    assert [a["decision"] for a in audit] == ["deny"]


def test_one_deny_among_pairs_leaves_every_dest_empty(fetcher: Fetcher, tmp_path: Path) -> None:
    arena = fetcher.arena
    good = arena.good()
    bad, _ = _revoked(arena)
    d1, d2 = tmp_path / "good", tmp_path / "bad"
    proc = fetcher.run(f"trustload://{good}@production", str(d1), f"trustload://{bad}@1", str(d2))
    assert proc.returncode == 1
    assert [d["decision"] for d in json.loads(proc.stdout)] == ["permit", "deny"]
    _assert_empty(d1)
    _assert_empty(d2)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["trustload://m@1"],
        ["trustload://m@1", "/tmp/x", "trustload://n@1"],
        ["s3://bucket/model", "DEST"],
        ["oci://registry/model:1", "DEST"],
        ["trustload://model", "DEST"],
        ["trustload://@production", "DEST"],
        ["trustload://team/model@1", "DEST"],
        ["trustload://model@a/b", "DEST"],
        ["trustload://model@../1", "DEST"],
        ["trustload://m@1", "DEST", "trustload://n@1", "DEST"],
    ],
    ids=[
        "none",
        "odd-1",
        "odd-3",
        "s3",
        "oci",
        "no-ref",
        "no-name",
        "slash-name",
        "slash-ref",
        "dotdot-ref",
        "same-dest",
    ],
)
def test_usage_errors_exit_2(fetcher: Fetcher, tmp_path: Path, args: list[str]) -> None:
    dest = tmp_path / "dest"
    proc = fetcher.run(*[str(dest) if a == "DEST" else a for a in args], cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    _assert_empty(dest)
    assert json.loads(fetcher.termination_log.read_bytes())["decision"] == "error"


def test_missing_config_exits_2(fetcher: Fetcher, tmp_path: Path) -> None:
    name = fetcher.arena.good()
    env = fetcher.env(TRUSTLOAD_CONFIG=str(tmp_path / "nope.toml"))
    proc = fetcher.run(f"trustload://{name}@production", str(tmp_path / "d"), env=env)
    assert proc.returncode == 2 and "config file not found" in proc.stderr
    _assert_empty(tmp_path / "d")


def test_unwritable_state_dir_is_a_usage_error_before_any_download(
    fetcher: Fetcher, tmp_path: Path
) -> None:
    name = fetcher.arena.good()
    ro = tmp_path / "ro"
    ro.mkdir()
    cfg = fetcher.config.read_text().replace(
        str(fetcher.state_dir), str(ro / "file-not-dir" / "state")
    )
    (ro / "file-not-dir").write_text("x")
    fetcher.config.write_text(cfg)
    proc = fetcher.run(f"trustload://{name}@production", str(tmp_path / "d"))
    assert proc.returncode == 2 and "state_dir" in proc.stderr, proc.stderr
    _assert_empty(tmp_path / "d")


def test_non_empty_dest_is_refused_and_left_alone(fetcher: Fetcher, tmp_path: Path) -> None:
    name = fetcher.arena.good()
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "someone-elses.bin").write_bytes(b"keep me")
    proc = fetcher.run(f"trustload://{name}@production", str(dest))
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert os.listdir(dest) == ["someone-elses.bin"]


def test_nothing_secret_in_argv_config_only_from_env(fetcher: Fetcher, tmp_path: Path) -> None:
    """The command has no option for a token, key or config path: argv is pairs only."""
    proc = fetcher.run("--config", str(fetcher.config), str(tmp_path / "d"))
    assert proc.returncode == 2


def test_termination_summary_is_bounded() -> None:
    from datetime import UTC, datetime

    from trustload.decision import CheckResult, Decision, Event
    from trustload.fetch import summary

    many = [
        Decision(
            event=Event.STARTUP_DENY,
            checks=[CheckResult.failed("x", ReasonCode.REVOKED, "d" * 500)],
            requested=f"{'n' * 120}{i}@production",
            model="n" * 128,
            version="v" * 64,
            artifact_digest="sha256:" + "a" * 64,
            at=datetime.now(UTC),
        )
        for i in range(100)
    ]
    raw = summary(many)
    assert len(raw) <= MAX_TERMINATION_BYTES
    doc = json.loads(raw)
    assert doc["decision"] == "deny" and doc["truncated"] == 100 - len(doc["models"]) > 0
    assert len(summary([], error="e" * 10_000)) <= MAX_TERMINATION_BYTES
