"""Pure pieces of the runtime: the record checks a refresh re-runs, healthy history,
cached records."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from trustload.client.api import parse_record
from trustload.decision import ReasonCode
from trustload.digests import FileEntry
from trustload.errors import TrustloadError
from trustload.facts import ModelCard, TrustedState, VersionRecord
from trustload.rules import RECORD_CHECKS, RecordFacts, run_checks
from trustload.serve.offline import record_document
from trustload.state import (
    forget_healthy,
    healthy_versions,
    load_last_record,
    record_healthy,
    save_last_record,
)

DIGEST = "sha256:" + "ab" * 32


def _record(**over: object) -> VersionRecord:
    card = ModelCard("A", "credit", ("credit_scoring",), datetime(2099, 1, 1, tzinfo=UTC), "onnx")
    base = VersionRecord(
        name="risk", version="2", stage="Approved", artifact_digest=DIGEST, artifact_size=3,
        kind="file", format="onnx", policy_digest="sha256:" + "11" * 32, git_sha="g" * 40,
        container_digest="sha256:" + "22" * 32, dataset_snapshot="ds", revoked=False,
        quarantined=False, card=card, alias="production", alias_revision=4,
        files=(FileEntry("model.onnx", "ab" * 32, 3),),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    return dataclasses.replace(base, **over)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "over,env,expected",
    [
        ({}, "prod", []),
        ({"revoked": True, "revoked_reason": "bad"}, "prod", [ReasonCode.REVOKED]),
        ({"quarantined": True}, "prod", [ReasonCode.QUARANTINED]),
        ({"stage": "Staging"}, "prod", [ReasonCode.STAGE_NOT_ALLOWED]),
        ({"stage": "Staging"}, "staging", []),
        ({"stage": "Archived"}, "staging", [ReasonCode.STAGE_NOT_ALLOWED]),
        ({"artifact_digest": "sha256:" + "cd" * 32}, "prod", [ReasonCode.DOWNGRADE_BLOCKED]),
        ({"policy_digest": "sha256:" + "99" * 32}, "prod", [ReasonCode.POLICY_DIGEST_MISMATCH]),
        ({"stage": "Staging"}, "qa", []),
        (
            {"revoked": True, "quarantined": True},
            "prod",
            [ReasonCode.REVOKED, ReasonCode.QUARANTINED],
        ),
    ],
)
def test_record_checks_refresh_reruns(
    over: dict[str, object], env: str, expected: list[ReasonCode]
) -> None:
    """The engine's one table of record checks, as a refresh runs it for the served
    version (the runtime trusts exactly what it serves: a changed digest is a downgrade)."""
    rec = _record(**over)
    served = TrustedState("risk", env, "2", "production", 4, DIGEST)
    facts = RecordFacts(
        record=rec,
        environment=env,
        allowed_stages=None,
        now=datetime(2026, 6, 1, tzinfo=UTC),
        policy_digest="sha256:" + "11" * 32,  # the bundle loaded now
        requester=None,
        trusted_state=served,
    )
    codes = [
        c.code
        for c in run_checks(RECORD_CHECKS, facts)
        if not c.ok
        and c.code is not ReasonCode.TENANT_MISMATCH
        and c.code is not ReasonCode.PURPOSE_NOT_ALLOWED  # no requester in this table test
    ]
    assert codes == expected


def test_healthy_history_order_forget_and_bound(tmp_path: Path) -> None:
    assert healthy_versions(tmp_path, "risk", "prod") == []
    for v in ("1", "2", "1", "3"):
        record_healthy(tmp_path, "risk", "prod", v, f"sha256:{v * 64}")
    assert [h["version"] for h in healthy_versions(tmp_path, "risk", "prod")] == ["2", "1", "3"]
    forget_healthy(tmp_path, "risk", "prod", "1")
    assert [h["version"] for h in healthy_versions(tmp_path, "risk", "prod")] == ["2", "3"]
    assert healthy_versions(tmp_path, "risk", "staging") == []  # per environment
    for i in range(40):
        record_healthy(tmp_path, "risk", "prod", str(i), DIGEST)
    assert len(healthy_versions(tmp_path, "risk", "prod")) == 16


def test_corrupt_history_fails_closed(tmp_path: Path) -> None:
    record_healthy(tmp_path, "risk", "prod", "1", DIGEST)
    (path,) = tmp_path.glob("healthy-*.json")
    path.write_text("{torn")
    with pytest.raises(TrustloadError) as exc:
        healthy_versions(tmp_path, "risk", "prod")
    assert exc.value.code is ReasonCode.DOWNGRADE_BLOCKED


def test_cached_record_round_trips_through_the_strict_parser(tmp_path: Path) -> None:
    rec = _record()
    doc = record_document(rec)
    assert parse_record(json.loads(json.dumps(doc))) == rec
    save_last_record(tmp_path, "risk", "prod", "production", doc, "2026-01-01T00:00:00Z")
    cached = load_last_record(tmp_path, "risk", "prod")
    assert cached is not None and cached["ref"] == "production"
    assert parse_record(cached["record"]) == rec
    assert load_last_record(tmp_path, "other", "prod") is None


class _BrokenRegistry:
    """A Registry answer path that blows up with a non-trustload error (a bug)."""

    def resolve(self, name: str, ref: str) -> VersionRecord:
        raise RuntimeError("unexpected")

    def close(self) -> None:
        pass


def test_internal_refresh_error_withdraws_the_model(tmp_path: Path) -> None:
    import hashlib

    from trustload.config import ClientFileConfig, GateConfig, RegistryClientConfig
    from trustload.digests import ModelLayout
    from trustload.facts import ModelRef
    from trustload.serve.active import ActiveModel
    from trustload.serve.loader import load_verified
    from trustload.serve.runtime import ServingRuntime

    from .onnx_models import write_model

    path = write_model(tmp_path / "m.onnx", [1.0], 0.0)
    data = path.read_bytes()
    entry = FileEntry(path.name, hashlib.sha256(data).hexdigest(), len(data))
    model = load_verified(ModelLayout.from_path(path), [entry], "onnx")
    cfg = ClientFileConfig(
        registry=RegistryClientConfig(
            url="https://127.0.0.1:1", ca=tmp_path / "ca", client_cert=tmp_path / "c",
            client_key=tmp_path / "k",
        ),
        gate=GateConfig(state_dir=tmp_path / "state", audit_log=tmp_path / "audit.jsonl"),
    )  # fmt: skip
    runtime = ServingRuntime(cfg, ModelRef("risk", "production"), client=_BrokenRegistry())  # type: ignore[arg-type]
    runtime._publish(ActiveModel(_record(), model, {}, datetime.now(UTC)))
    runtime._contact()
    assert runtime.current() is not None
    runtime.refresh_safely()
    assert runtime.current() is None  # fail closed, not "keep serving and hope"
    last = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "serving_withdrawn" and last["reasons"] == ["INTERNAL_ERROR"]
    assert b"trustload_ready 0.0" in runtime.metrics.render()


def test_denied_candidate_memo() -> None:
    from trustload.serve.candidate import DenialMemo

    memo = DenialMemo()
    key = DenialMemo.key(_record())
    memo.remember(key, ["REGISTRY_UNAVAILABLE"], now=0.0, retry=30.0)
    assert not memo.blocked(key, 1.0)  # a channel problem is retried at the next interval
    memo.remember(key, ["SIGNATURE_INVALID"], now=0.0, retry=30.0)
    assert memo.blocked(key, 29.0) and not memo.blocked(key, 31.0)  # retried after back-off
    assert not memo.blocked(DenialMemo.key(_record(revoked=True)), 1.0)  # a changed answer: at once


def test_offline_start_uses_only_a_fresh_cached_record_for_the_reference(tmp_path: Path) -> None:
    from trustload.facts import ModelRef
    from trustload.serve.offline import CachedStart, cached_start

    ref = ModelRef("risk", "production")
    now = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
    assert cached_start(tmp_path, ref, "prod", 300.0, now) == (
        "no cached Registry record for risk@production"
    )

    def save(ref_name: str, fetched_at: str) -> None:
        doc = record_document(_record())
        save_last_record(tmp_path, "risk", "prod", ref_name, doc, fetched_at)

    save("production", "2026-06-01T11:58:00+00:00")
    fresh = cached_start(tmp_path, ref, "prod", 300.0, now)
    assert isinstance(fresh, CachedStart)
    assert fresh.record.version == "2" and fresh.age == 120.0 and "120s old" in fresh.why
    assert cached_start(tmp_path, ModelRef("risk", "staging"), "prod", 300.0, now) == (
        "no cached Registry record for risk@staging"  # saved for another reference
    )
    stale = cached_start(tmp_path, ref, "prod", 100.0, now)
    assert stale == (
        "cached Registry record is 120s old; offline start needs < 100.0s (max_staleness)"
    )
    save("production", "2026-06-01T12:05:00+00:00")  # from the future: never fresh
    assert "is -300s old" in str(cached_start(tmp_path, ref, "prod", 300.0, now))
    save("production", "2026-06-01T11:58:00")  # no offset: no age, refused (not a crash)
    assert "has no offset" in str(cached_start(tmp_path, ref, "prod", 300.0, now))
