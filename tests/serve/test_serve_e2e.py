"""A real `trustload serve` process against a real Registry over mTLS + OIDC."""

from __future__ import annotations

import subprocess

from tests.support.registry import RunningRegistry

from .harness import audit_events, configure_gate, infer, publish_signed, run_serve


def test_startup_permit_serves_verified_model(running_registry: RunningRegistry) -> None:
    env = running_registry.env
    pub = publish_signed(running_registry, "risk", "1", [1.0, -1.0], 0.0)
    configure_gate(env.gate_config)
    serving = run_serve(env.gate_config, "risk@production")
    assert not isinstance(serving, subprocess.CompletedProcess), serving.stderr
    try:
        with serving.http() as http:
            assert http.get("/v2/health/ready").status_code == 200
            meta = http.get("/v2/models/risk").json()
            assert meta["versions"] == ["1"]
            assert meta["parameters"]["artifact_digest"] == pub["digest"]
            res = infer(http, "risk", [[2.0, 1.0]])
            assert res.status_code == 200, res.text
            assert res.json()["model_version"] == "1"
    finally:
        assert serving.stop() == 0
    events = audit_events(env.root / "audit.jsonl")
    assert events[0]["event"] == "startup_permit" and events[0]["version"] == "1"
