"""Refresh re-decides: a model that a fresh ``verify`` would deny stops being served at the
next refresh (or SIGHUP), with the reason codes in the audit event; a rollback admits only
a version that passes the same full decision (INTERFACE.md, "Rules that close known
attacks"; issue 8 item 3).

Each test runs a real ``trustload serve`` process against the arena's real Registry (mTLS,
dev-issuer tokens, real signatures and Rego). Time windows are a few seconds wide: the
runtime's clock is the host clock, so the tests publish a version whose date passes while
it is being served.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.helpers import Arena, card
from tests.serve.harness import (
    Serving,
    audit_events,
    configure_gate,
    publish_signed,
    run_serve,
    wait_until,
)
from tests.serve.onnx_models import linear_scorer
from tests.support.registry import DevEnv, RunningRegistry
from trustload.decision import ReasonCode


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Pod:
    """One serving workload: its own gate.toml, policy bundle copy, cache, state and audit."""

    def __init__(self, env: DevEnv, root: Path, *, refresh: float) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.policy_dir = root / "policy"
        shutil.copytree(env.policy_dir, self.policy_dir)
        text = env.gate_config.read_text()
        base = env.gate_config.parent
        text = text.replace('"pki/', f'"{base}/pki/')
        text = text.replace('"registry.toml"', f'"{base / "registry.toml"}"')
        text = text.replace('"signing.pub"', f'"{base / "signing.pub"}"')
        text = re.sub(r"(?m)^policy_dir = .*$", f'policy_dir = "{self.policy_dir}"', text)
        text = re.sub(r"(?m)^cache_dir = .*$", f'cache_dir = "{root / "cache"}"', text)
        text = re.sub(r"(?m)^state_dir = .*$", f'state_dir = "{root / "state"}"', text)
        text = re.sub(r"(?m)^audit_log = .*$", f'audit_log = "{root / "audit.jsonl"}"', text)
        # No leeway on validity windows: the attestation's notAfter is exact here.
        text = text.replace('environment = "prod"\n', 'environment = "prod"\nclock_skew = 0\n')
        self.config = root / "gate.toml"
        self.config.write_text(text)
        configure_gate(self.config, refresh=refresh)

    def serve(self, model: str) -> Serving:
        serving = run_serve(self.config, model)
        assert not isinstance(serving, subprocess.CompletedProcess), serving.stderr
        return serving

    def events(self) -> list[dict[str, Any]]:
        return audit_events(self.root / "audit.jsonl")

    def edit_policy(self) -> None:
        rego = sorted(self.policy_dir.glob("*.rego"))[0]
        rego.write_text(rego.read_text() + "\n# edited in the pod\n")


@pytest.fixture
def pod(arena: Arena, tmp_path: Path) -> Pod:
    return Pod(arena.env, tmp_path, refresh=0.3)


def publish(
    arena: Arena,
    name: str,
    version: str,
    *,
    revalidate_by: datetime | None = None,
    not_after: datetime | None = None,
    alias: str | None = "production",
) -> None:
    """Publish a genuinely signed, loadable ONNX model (approved, aliased)."""
    path = arena.model_file(linear_scorer([1.0, -1.0], float(version)))
    att: dict[str, Any] = {}
    if not_after is not None:
        att = {"not_before": datetime.now(UTC) - timedelta(hours=1), "not_after": not_after}
    signed = arena.sign(path, **att)
    doc = card()
    if revalidate_by is not None:
        doc["revalidate_by"] = _stamp(revalidate_by)
    arena.publish(name, version, path, signed=signed, card_doc=doc, alias=alias)


def served_version(serving: Serving, name: str) -> str | None:
    with serving.http() as http:
        r = http.get(f"/v2/models/{name}")
        return r.json()["versions"][0] if r.status_code == 200 else None


def ready(serving: Serving) -> int:
    with serving.http() as http:
        return http.get("/v2/health/ready").status_code


def assert_withdrawn(events: list[dict[str, Any]], version: str, *codes: ReasonCode) -> None:
    """The served ``version`` was withdrawn on refresh with exactly ``codes`` in the audit
    event, and nothing served it after that: any later event about it is a denial."""
    kinds = [(e["event"], e.get("version")) for e in events]
    assert ("serving_withdrawn", version) in kinds, kinds
    at = kinds.index(("serving_withdrawn", version))
    event = events[at]
    assert set(event["reasons"]) == {str(c) for c in codes}, event
    assert all(not c["ok"] for c in event["checks"]) and event["checks"], event
    for later in events[at + 1 :]:
        if later.get("version") == version:
            assert later.get("decision") == "deny" or later["event"] == "serving_stop", later


def _past(moment: datetime) -> None:
    """Wait (bounded) until the host clock is past ``moment``."""
    delay = (moment - datetime.now(UTC)).total_seconds()
    assert delay < 20, "the window was too long for this test"
    if delay > 0:
        time.sleep(delay + 0.2)


def test_governance_policy_bundle_edited_while_serving(arena: Arena, pod: Pod) -> None:
    """The pod's policy bundle is edited while the model is served (R9 policy drift).

    The next periodic refresh runs the whole decision with the bundle on disk now: its
    digest no longer matches the Registry's, so the model is withdrawn (not ready), and
    the only rollback candidate fails the same decision.

    Attack: governance / policy drift
    """
    name = arena.name("drift")
    publish(arena, name, "1")
    serving = pod.serve(f"{name}@production")
    try:
        assert ready(serving) == 200
        pod.edit_policy()
        wait_until(lambda: ready(serving) == 503, timeout=15, what="withdrawal on refresh")
        assert served_version(serving, name) is None
    finally:
        assert serving.stop() == 0
    events = pod.events()
    assert_withdrawn(events, "1", ReasonCode.POLICY_DIGEST_MISMATCH)
    assert not any(e["event"] == "rollback_execute" and e["decision"] == "permit" for e in events)


def test_governance_revalidation_date_passes_while_serving(arena: Arena, pod: Pod) -> None:
    """The model card's revalidate_by passes while v2 is served; v1 is still valid.

    The refresh withdraws v2 with REVALIDATION_OVERDUE and rolls back to v1, which passes
    the same full decision (recorded as rollback_execute).

    Attack: governance / revalidation
    """
    name = arena.name("reval")
    publish(arena, name, "1")
    serving = pod.serve(f"{name}@production")
    try:
        due = datetime.now(UTC) + timedelta(seconds=6)
        publish(arena, name, "2", revalidate_by=due)
        wait_until(lambda: served_version(serving, name) == "2", timeout=6, what="swap to v2")
        _past(due)
        wait_until(lambda: served_version(serving, name) == "1", timeout=15, what="rollback")
    finally:
        assert serving.stop() == 0
    events = pod.events()
    assert_withdrawn(events, "2", ReasonCode.REVALIDATION_OVERDUE)
    kinds = [(e["event"], e.get("version"), e.get("decision")) for e in events]
    assert kinds.index(("serving_withdrawn", "2", None)) < kinds.index(
        ("rollback_execute", "1", "permit")
    )


def test_identity_attestation_expires_while_serving(arena: Arena, pod: Pod) -> None:
    """The attestation's notAfter passes while v2 is served (validity window, R2.8).

    The refresh re-verifies the attestation held in memory against the clock now:
    ATTESTATION_EXPIRED withdraws v2, and v1 (a valid window) is rolled back to.

    Attack: identity / validity
    """
    name = arena.name("expiry")
    publish(arena, name, "1")
    serving = pod.serve(f"{name}@production")
    try:
        until = datetime.now(UTC) + timedelta(seconds=6)
        publish(arena, name, "2", not_after=until)
        wait_until(lambda: served_version(serving, name) == "2", timeout=6, what="swap to v2")
        _past(until)
        wait_until(lambda: served_version(serving, name) == "1", timeout=15, what="rollback")
    finally:
        assert serving.stop() == 0
    events = pod.events()
    assert_withdrawn(events, "2", ReasonCode.ATTESTATION_EXPIRED)
    assert any(
        e["event"] == "rollback_execute" and e["version"] == "1" and e["decision"] == "permit"
        for e in events
    )


def test_governance_rollback_target_fails_the_full_decision_on_sighup(
    arena: Arena, tmp_path: Path
) -> None:
    """Both v2 (served) and v1 (the previous healthy version) pass revalidate_by; only
    SIGHUP triggers the refresh (a long interval).

    SIGHUP runs the whole decision: v2 is withdrawn with REVALIDATION_OVERDUE, and the
    rollback to v1 is refused for the same reason, so nothing is served.

    Attack: governance / revalidation
    """
    pod = Pod(arena.env, tmp_path, refresh=600)
    name = arena.name("rollback")
    due = datetime.now(UTC) + timedelta(seconds=10)
    publish(arena, name, "1", revalidate_by=due)
    publish(arena, name, "2", revalidate_by=due, alias=None)
    serving = pod.serve(f"{name}@production")
    try:
        assert served_version(serving, name) == "1"
        arena.admin().set_alias(name, "production", "2")
        serving.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: served_version(serving, name) == "2", timeout=8, what="SIGHUP swap")
        _past(due)
        assert ready(serving) == 200  # nothing re-decides without a refresh
        serving.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: ready(serving) == 503, timeout=10, what="withdrawal on SIGHUP")
    finally:
        assert serving.stop() == 0
    events = pod.events()
    assert_withdrawn(events, "2", ReasonCode.REVALIDATION_OVERDUE)
    rollbacks = [e for e in events if e["event"] == "rollback_execute"]
    assert rollbacks and all(e["decision"] == "deny" for e in rollbacks), rollbacks
    assert "REVALIDATION_OVERDUE" in rollbacks[-1]["reasons"]
    assert any(e["event"] == "serving_not_ready" for e in events)


def test_governance_policy_edited_while_the_registry_is_cut_off(
    running_registry: RunningRegistry, tmp_path: Path
) -> None:
    """The Registry is cut off, then the pod's policy bundle is edited (freeze plus drift).

    Without a Registry answer the refresh still re-decides everything that does not need
    one, over the last record the Registry sent: the model is withdrawn at once, not only
    when max_staleness (300 s here) runs out.

    Attack: governance / policy drift
    """
    pod = Pod(running_registry.env, tmp_path / "pod", refresh=0.3)
    publish_signed(running_registry, "risk", "1", [1.0, -1.0], 0.0)
    serving = pod.serve("risk@production")
    try:
        assert ready(serving) == 200
        running_registry.stop()
        time.sleep(1.0)  # a few refreshes without the Registry: still served (fresh enough)
        assert ready(serving) == 200
        pod.edit_policy()
        wait_until(lambda: ready(serving) == 503, timeout=10, what="withdrawal while offline")
    finally:
        assert serving.stop() == 0
    assert_withdrawn(pod.events(), "1", ReasonCode.POLICY_DIGEST_MISMATCH)
