"""A real `trustload serve` process against a real Registry over mTLS + OIDC."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support.registry import RunningRegistry, start_registry

from .harness import (
    Serving,
    audit_events,
    configure_gate,
    infer,
    publish_signed,
    revoke,
    run_serve,
    set_alias,
    wait_until,
)


def _serve(env_gate: Path, model: str = "risk@production", **kw: object) -> Serving:
    serving = run_serve(env_gate, model, **kw)  # type: ignore[arg-type]
    assert not isinstance(serving, subprocess.CompletedProcess), serving.stderr
    return serving


def _version(serving: Serving, name: str = "risk") -> str | None:
    with serving.http() as http:
        r = http.get(f"/v2/models/{name}")
        return r.json()["versions"][0] if r.status_code == 200 else None


def _audit_cli(log: Path) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "trustload.cli.main", "audit", "verify", str(log)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_startup_permit_serves_verified_model_metrics_and_audit(
    running_registry: RunningRegistry,
) -> None:
    env = running_registry.env
    pub = publish_signed(running_registry, "risk", "1", [1.0, -1.0], 0.0)
    configure_gate(env.gate_config)
    serving = _serve(env.gate_config)
    try:
        with serving.http() as http:
            assert http.get("/v2/health/live").status_code == 200
            assert http.get("/v2/health/ready").status_code == 200
            meta = http.get("/v2/models/risk").json()
            assert meta["versions"] == ["1"]
            assert meta["parameters"]["artifact_digest"] == pub["digest"]
            res = infer(http, "risk", [[2.0, 1.0]])
            assert res.status_code == 200, res.text
            assert res.json()["model_version"] == "1"
            text = http.get("/metrics").text
        # A client that sends half a body and stalls gets 408 after request_timeout.
        host, port = serving.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            sock.sendall(
                b"POST /v2/models/risk/infer HTTP/1.1\r\nHost: x\r\n"
                b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"inputs"'
            )
            assert sock.recv(4096).startswith(b"HTTP/1.1 408")
        assert (
            'trustload_decisions_total{decision="permit",event="startup_permit",reason="none"} 1.0'
            in text
        )
        assert 'trustload_check_duration_seconds_count{check="signature"}' in text
        assert f'artifact_digest="{pub["digest"]}",model="risk",version="1"' in text
        assert "trustload_ready 1.0" in text
        assert "trustload_registry_contact_age_seconds" in text
    finally:
        assert serving.stop() == 0
    log = env.root / "audit.jsonl"
    events = audit_events(log)
    first = events[0]
    assert first["event"] == "startup_permit" and first["version"] == "1"
    for field in (
        "model",
        "artifact_digest",
        "policy_digest",
        "git_sha",
        "container_digest",
        "tenant",
        "domain",
        "environment",
        "caller",
        "latency_ms",
        "reasons",
    ):
        assert field in first
    assert {c["name"] for c in first["checks"]} >= {
        "signature",
        "load",
        "warmup",
        "registry_recheck",
    }
    assert [e["event"] for e in events][-1] == "serving_stop"
    assert "token" not in log.read_text().lower().replace("tokens", "")
    assert _audit_cli(log).returncode == 0
    lines = log.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace('"decision":"permit"', '"decision":"deny"')
    log.write_text("".join(lines))
    res = _audit_cli(log)
    assert res.returncode == 1 and "line 2" in res.stderr


def test_startup_denied_on_tampered_registry_blob(running_registry: RunningRegistry) -> None:
    env = running_registry.env
    pub = publish_signed(running_registry, "risk", "1", [1.0, -1.0], 0.0)
    blob = running_registry.blob_path(pub["digest"])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    configure_gate(env.gate_config)
    res = run_serve(env.gate_config, "risk@production")
    assert isinstance(res, subprocess.CompletedProcess)
    assert res.returncode == 1
    decision = json.loads(res.stderr.decode()[res.stderr.decode().index("{") :])
    assert decision["event"] == "startup_deny" and decision["decision"] == "deny"
    assert "DIGEST_MISMATCH" in decision["reasons"]
    assert audit_events(env.root / "audit.jsonl")[-1]["reasons"] == decision["reasons"]


def test_pickle_model_refused_at_startup(running_registry: RunningRegistry) -> None:
    env = running_registry.env
    publish_signed(
        running_registry, "pk", "1", [], 0.0, data=b"\x80\x04K\x01.", fmt="pt", filename="model.pt"
    )
    configure_gate(env.gate_config)
    res = run_serve(env.gate_config, "pk@production")
    assert isinstance(res, subprocess.CompletedProcess) and res.returncode == 1
    decision = json.loads(res.stderr.decode()[res.stderr.decode().index("{") :])
    load = [c for c in decision["checks"] if c["name"] == "load"]
    assert load and not load[0]["ok"] and "pickle" in load[0]["detail"]
    assert decision["reasons"] == ["POLICY_DENY"]


def test_alias_move_swaps_then_revocation_rolls_back(running_registry: RunningRegistry) -> None:
    env = running_registry.env
    publish_signed(running_registry, "risk", "1", [1.0, -1.0], 0.0)
    configure_gate(env.gate_config, refresh=0.5)
    serving = _serve(env.gate_config)
    try:
        assert _version(serving) == "1"
        publish_signed(running_registry, "risk", "2", [2.0, -2.0], 0.5)
        wait_until(lambda: _version(serving) == "2", what="swap to v2")
        with serving.http() as http:
            assert infer(http, "risk", [[1.0, 1.0]]).json()["model_version"] == "2"
        revoke(running_registry, "risk", "2", "bad training data")
        # Within one interval (plus gate time): v2 withdrawn, v1 re-verified and served.
        wait_until(lambda: _version(serving) == "1", timeout=20, what="rollback to v1")
        text = serving.http().get("/metrics").text
        assert 'event="rollback_execute"' in text
    finally:
        assert serving.stop() == 0
    events = audit_events(env.root / "audit.jsonl")
    kinds = [(e["event"], e.get("version")) for e in events]
    assert ("serving_swap", "2") in kinds
    withdrawn = [e for e in events if e["event"] == "serving_withdrawn"]
    assert withdrawn and withdrawn[0]["version"] == "2" and withdrawn[0]["reasons"] == ["REVOKED"]
    rollback = [e for e in events if e["event"] == "rollback_execute"]
    assert rollback and rollback[-1]["decision"] == "permit" and rollback[-1]["version"] == "1"
    # Nothing served v2 after the withdrawal: the rollback comes after it in the log.
    assert kinds.index(("serving_withdrawn", "2")) < kinds.index(("rollback_execute", "1"))


def test_chaos_revocation_during_warmup_keeps_previous(
    running_registry: RunningRegistry, tmp_path: Path
) -> None:
    env = running_registry.env
    publish_signed(running_registry, "risk", "1", [1.0, -1.0], 0.0)
    configure_gate(env.gate_config, refresh=0.5)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    (barrier / "continue-1").touch()
    serving = _serve(env.gate_config, env={"TRUSTLOAD_WARMUP_BARRIER": str(barrier)})
    try:
        publish_signed(running_registry, "risk", "2", [2.0, -2.0], 0.5)
        wait_until(lambda: (barrier / "warming-2").exists(), what="v2 warm-up")
        assert _version(serving) == "1"  # the old one serves while the candidate warms
        revoke(running_registry, "risk", "2", "chaos")
        (barrier / "continue-2").touch()
        log = env.root / "audit.jsonl"
        wait_until(
            lambda: any(
                e["event"] == "startup_deny" and e.get("version") == "2" for e in audit_events(log)
            ),
            what="candidate denied",
        )
        assert _version(serving) == "1"
    finally:
        assert serving.stop() == 0
    denied = [e for e in audit_events(log) if e["event"] == "startup_deny" and e["version"] == "2"]
    assert "REVOKED" in denied[0]["reasons"]
    assert not any(e["event"] == "serving_swap" for e in audit_events(log))


def test_registry_down_staleness_limit_then_not_ready(running_registry: RunningRegistry) -> None:
    env = running_registry.env
    publish_signed(running_registry, "risk", "1", [1.0, -1.0], 0.0)
    configure_gate(env.gate_config, refresh=0.3, max_staleness=3)
    serving = _serve(env.gate_config)

    def scrape() -> tuple[int, float]:
        with serving.http() as http:
            ready = http.get("/v2/health/ready").status_code
            text = http.get("/metrics").text
        (line,) = [
            ln
            for ln in text.splitlines()
            if ln.startswith("trustload_registry_contact_age_seconds ")
        ]
        return ready, float(line.split()[1])

    try:
        assert _version(serving) == "1"
        running_registry.stop()
        seen: list[tuple[int, float]] = []

        def not_ready() -> bool:
            seen.append(scrape())
            return seen[-1][0] == 503

        wait_until(not_ready, timeout=15, what="not ready after max_staleness")
        # Ready exactly while the last Registry contact was younger than max_staleness.
        for ready, age in seen[:-1]:
            assert ready == 200 and age <= 3.5
        assert seen[-1][1] >= 3.0
        with serving.http() as http:
            assert infer(http, "risk", [[1.0, 1.0]]).status_code == 503
            assert "trustload_refresh_failures_total" in http.get("/metrics").text
    finally:
        assert serving.stop() == 0
    events = audit_events(env.root / "audit.jsonl")
    assert any(
        e["event"] == "serving_not_ready" and e.get("reason") == "REGISTRY_UNAVAILABLE"
        for e in events
    )


@pytest.mark.skipif(
    bool(os.environ.get("TRUSTLOAD_TEST_DATABASE_URL")),
    reason="replays the Registry by restoring a SQLite file snapshot; on PostgreSQL the same "
    "attack is covered by tests/attacks/test_tuf.py::test_tuf_rollback_replayed_alias_answer",
)
def test_downgrade_replay_blocked(running_registry: RunningRegistry) -> None:
    """A Registry answer replayed from the past (alias -> v1 at revision 1) after this
    runtime trusted v2 at revision 2 is DOWNGRADE_BLOCKED."""
    env = running_registry.env
    publish_signed(running_registry, "risk", "1", [1.0, -1.0], 0.0)
    publish_signed(running_registry, "risk", "2", [2.0, -2.0], 0.5, alias=None)
    running_registry.stop()
    snapshot = env.root / "snapshot"
    snapshot.mkdir()
    db_files = ("registry.db", "registry.db-wal", "registry.db-shm")
    for name in db_files:  # the old answer: production -> 1, revision 1
        if (env.root / name).exists():
            shutil.copy2(env.root / name, snapshot / name)
    with start_registry(env) as reg:
        set_alias(reg, "risk", "production", "2")
        configure_gate(env.gate_config)
        serving = _serve(env.gate_config)
        assert _version(serving) == "2"
        assert serving.stop() == 0
    for name in db_files:
        (env.root / name).unlink(missing_ok=True)
        if (snapshot / name).exists():
            shutil.copy2(snapshot / name, env.root / name)
    with start_registry(env) as reg:
        configure_gate(env.gate_config)
        res = run_serve(env.gate_config, "risk@production")
        if isinstance(res, Serving):
            # Replay refused; the runtime stays on the version it trusts (explicit rollback).
            assert _version(res) == "2"
            assert res.stop() == 0
        else:
            assert res.returncode == 1
    events = audit_events(env.root / "audit.jsonl")
    replay = [e for e in events if e["event"] == "startup_deny" and e.get("version") == "1"]
    assert replay and "DOWNGRADE_BLOCKED" in replay[-1]["reasons"]


@pytest.mark.parametrize("sig", ["SIGINT"])
def test_clean_stop_on_sigint(running_registry: RunningRegistry, sig: str) -> None:
    import signal

    env = running_registry.env
    publish_signed(running_registry, "risk", "1", [1.0, -1.0], 0.0)
    configure_gate(env.gate_config)
    serving = _serve(env.gate_config)
    serving.proc.send_signal(getattr(signal, sig))
    assert serving.proc.wait(20) == 0
    serving.stop()


def test_registry_down_at_startup_denied_unless_fresh_offline_record(
    running_registry: RunningRegistry,
) -> None:
    env = running_registry.env
    publish_signed(running_registry, "risk", "1", [1.0, -1.0], 0.0)
    configure_gate(env.gate_config, max_staleness=120, offline_start=True)
    serving = _serve(env.gate_config)  # online start: remembers the Registry's record
    assert serving.stop() == 0
    running_registry.stop()
    log = env.root / "audit.jsonl"

    # offline_start + a record younger than max_staleness: starts from the cache, re-verified.
    serving = _serve(env.gate_config)
    try:
        assert _version(serving) == "1"
    finally:
        assert serving.stop() == 0
    permits = [e for e in audit_events(log) if e["event"] == "startup_permit"]
    offline = [c for c in permits[-1]["checks"] if c["name"] == "offline_start"]
    assert offline and offline[0]["ok"] and "Registry unreachable" in offline[0]["detail"]
    assert {c["name"] for c in permits[-1]["checks"]} >= {"signature", "attestation", "load"}

    # The same record, aged past max_staleness (freeze attack): denied.
    (record_file,) = (env.root / "state").glob("record-*.json")
    doc = json.loads(record_file.read_text())
    doc["fetched_at"] = "2020-01-01T00:00:00Z"
    record_file.write_text(json.dumps(doc))
    res = run_serve(env.gate_config, "risk@production")
    assert isinstance(res, subprocess.CompletedProcess) and res.returncode == 1
    last = audit_events(log)[-1]
    assert last["event"] == "startup_deny" and last["reasons"] == ["REGISTRY_UNAVAILABLE"]
    assert "max_staleness" in last["checks"][0]["detail"]

    # Without offline_start: a Registry that is down denies start-up.
    configure_gate(env.gate_config, max_staleness=120, offline_start=False)
    res = run_serve(env.gate_config, "risk@production")
    assert isinstance(res, subprocess.CompletedProcess) and res.returncode == 1
    decision = json.loads(res.stderr.decode()[res.stderr.decode().index("{") :])
    assert decision["reasons"] == ["REGISTRY_UNAVAILABLE"]


def test_sighup_refresh_quarantine_release_and_alias_move(
    running_registry: RunningRegistry,
) -> None:
    """With a long interval every change below is picked up only because of SIGHUP."""
    import signal

    from .harness import quarantine, release

    env = running_registry.env
    publish_signed(running_registry, "risk", "1", [1.0, -1.0], 0.0)
    configure_gate(env.gate_config, refresh=600)
    serving = _serve(env.gate_config)

    def ready() -> int:
        with serving.http() as http:
            return http.get("/v2/health/ready").status_code

    try:
        assert ready() == 200
        quarantine(running_registry, "risk", "1", "suspected drift")
        serving.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: ready() == 503, what="quarantined model withdrawn")
        release(running_registry, "risk", "1")
        serving.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: ready() == 200, what="released model served again")
        publish_signed(running_registry, "risk", "2", [2.0, -2.0], 0.5)
        serving.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _version(serving) == "2", what="alias move picked up on SIGHUP")
    finally:
        assert serving.stop() == 0
    events = audit_events(env.root / "audit.jsonl")
    withdrawn = [e for e in events if e["event"] == "serving_withdrawn"]
    assert withdrawn[0]["reasons"] == ["QUARANTINED"] and withdrawn[0]["version"] == "1"
    assert any(e["event"] == "serving_swap" and e["version"] == "2" for e in events)


def test_directory_model_served_from_its_verified_manifest(
    running_registry: RunningRegistry,
) -> None:
    """A directory model (ONNX + extras): every file pinned through the signed manifest,
    the ONNX graph loaded from its verified blob."""
    from trustload.cli.publish import publish_model
    from trustload.config import load_client_config

    from .harness import CONTAINER, DATASET, GIT_SHA, set_alias, stage
    from .onnx_models import write_model

    env = running_registry.env
    model_dir = env.root / "dirmodel"
    model_dir.mkdir()
    write_model(model_dir / "model.onnx", [0.5, 0.25], 0.0)
    (model_dir / "README.md").write_text("linear scorer\n")
    (model_dir / "config").mkdir()
    (model_dir / "config" / "features.json").write_text('["a", "b"]\n')
    record = publish_model(
        load_client_config(env.admin_config),
        model_dir,
        name="dm",
        version="1",
        key=env.signing_key,
        git_sha=GIT_SHA,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
        card={
            "tenant_id": "A",
            "domain": "credit",
            "purpose": {"allowed": ["credit_scoring"]},
            "revalidate_by": "2099-01-01T00:00:00Z",
            "format": "onnx",
        },
    )
    assert record.kind == "directory"
    stage(running_registry, "dm", "1", "Approved")
    set_alias(running_registry, "dm", "production", "1")
    configure_gate(env.gate_config)
    serving = _serve(env.gate_config, "dm@production")
    try:
        with serving.http() as http:
            meta = http.get("/v2/models/dm").json()
            assert meta["parameters"]["artifact_digest"] == record.artifact_digest
            res = infer(http, "dm", [[2.0, 4.0]])
            assert res.status_code == 200, res.text
            assert abs(res.json()["outputs"][0]["data"][0] - 0.8807970) < 1e-5  # sigmoid(2)
    finally:
        assert serving.stop() == 0


def test_startup_denied_rolls_back_to_cached_healthy_version(
    running_registry: RunningRegistry,
) -> None:
    """Restarted after its current version was revoked: start-up is denied for v2 and the
    runtime re-verifies and serves v1 from its cache (rollback_execute), not nothing."""
    env = running_registry.env
    publish_signed(running_registry, "risk", "1", [1.0, -1.0], 0.0)
    configure_gate(env.gate_config)
    serving = _serve(env.gate_config)
    publish_signed(running_registry, "risk", "2", [2.0, -2.0], 0.5)
    wait_until(lambda: _version(serving) == "2", what="swap to v2")
    assert serving.stop() == 0
    revoke(running_registry, "risk", "2", "found while the pod was down")
    serving = _serve(env.gate_config)
    try:
        assert _version(serving) == "1"
        assert "rollback_execute" in serving.first_line
    finally:
        assert serving.stop() == 0
    events = audit_events(env.root / "audit.jsonl")
    tail = [(e["event"], e.get("version"), e.get("decision")) for e in events[-4:]]
    assert tail[:2] == [("startup_deny", "2", "deny"), ("rollback_execute", "1", "permit")]
    rollback = events[-3]
    assert {c["name"] for c in rollback["checks"]} >= {"signature", "rollback_history", "load"}
