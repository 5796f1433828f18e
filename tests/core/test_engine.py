"""decide(): every reason code the engine produces fires for its cause; all failures
are listed; a custom policy can add denials but never override a failed check.

Real signatures, real attestations, real regopy: nothing under test is mocked.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tests.core.builders import NOW, card, record, requester, state
from tests.core.conftest import CONTAINER, DATASET, GIT, Signed
from trustload.decision import CheckResult, Event
from trustload.decision import ReasonCode as R
from trustload.digests import ModelLayout
from trustload.engine import GateFacts, decide
from trustload.facts import Expectations, TrustAnchors
from trustload.policy import PolicyEngine, default_policy_dir


@pytest.fixture(scope="module")
def policy() -> PolicyEngine:
    return PolicyEngine.from_dir(default_policy_dir())


def facts_for(signed: Signed, policy: PolicyEngine, **changes) -> GateFacts:
    base = GateFacts(
        requested="risk-default@production",
        environment="prod",
        now=NOW,
        clock_skew=timedelta(seconds=60),
        layout=ModelLayout.from_path(signed.model),
        signature_bundle=signed.signature.read_bytes(),
        attestation=signed.attestation.read_bytes(),
        anchors=TrustAnchors(public_keys=(signed.pub.read_bytes(),)),
        expect=Expectations(),
        record=record(
            artifact_digest=signed.digest,
            policy_digest=policy.digest,
            git_sha=GIT,
            container_digest=CONTAINER,
            dataset_snapshot=DATASET,
        ),
        requester=requester(),
        runtime_policy_digest=policy.digest,
    )
    return replace(base, **changes)


def rec(signed: Signed, policy: PolicyEngine, **changes):
    return replace(facts_for(signed, policy).record, **changes)


def test_happy_path_permits(signed, policy):
    decision = decide(facts_for(signed, policy), policy)
    assert decision.permitted, [c for c in decision.checks if not c.ok]
    assert decision.event == Event.STARTUP_PERMIT
    assert decision.reasons == []
    names = [c.name for c in decision.checks]
    for expected in (
        "stage",
        "revoked",
        "quarantined",
        "digest",
        "signature",
        "attestation",
        "attestation_subject",
        "attestation_coherence",
        "attestation_validity",
        "policy_digest",
        "revalidation",
        "tenant",
        "purpose",
        "downgrade",
        "policy",
    ):
        assert expected in names
    doc = decision.to_json()
    assert doc["model"] == "risk-default" and doc["version"] == "3"
    assert doc["artifact_digest"] == signed.digest
    assert doc["policy_digest"] == policy.digest
    assert doc["tenant"] == "A" and doc["domain"] == "credit"
    assert doc["environment"] == "prod"
    assert doc["caller"] == requester().caller
    assert doc["git_sha"] == GIT and doc["container_digest"] == CONTAINER
    assert doc["latency_ms"] > 0


def _tampered(signed: Signed, tmp_path: Path) -> Path:
    copy = tmp_path / "model.onnx"
    shutil.copyfile(signed.model, copy)
    data = bytearray(copy.read_bytes())
    data[1234] ^= 0x01
    copy.write_bytes(bytes(data))
    return copy


# (id, changes to the facts, the exact set of reasons expected)
def cases(signed: Signed, policy: PolicyEngine, tmp_path: Path):
    r = lambda **c: rec(signed, policy, **c)  # noqa: E731
    other = tmp_path / "other.onnx"
    other.write_bytes(b"different bytes")
    from trustload.signing import attest

    wrong_subject = attest(
        other,
        signed.key,
        git_sha=GIT,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
        out=tmp_path / "other.att.json",
    )
    expired = attest(
        signed.model,
        signed.key,
        git_sha=GIT,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
        not_before=NOW - timedelta(days=30),
        not_after=NOW - timedelta(days=1),
        out=tmp_path / "expired.att.json",
    )
    return [
        ("stage", {"record": r(stage="Staging")}, {R.STAGE_NOT_ALLOWED}),
        (
            "archived",
            {"record": r(stage="Archived"), "environment": "staging"},
            {R.STAGE_NOT_ALLOWED},
        ),
        ("revoked", {"record": r(revoked=True, revoked_reason="leak")}, {R.REVOKED}),
        ("quarantined", {"record": r(quarantined=True)}, {R.QUARANTINED}),
        ("digest-pin", {"record": r(artifact_digest="sha256:" + "e" * 64)}, {R.DIGEST_MISMATCH}),
        ("sig-missing", {"signature_bundle": None}, {R.SIGNATURE_MISSING}),
        ("sig-garbage", {"signature_bundle": b'{"not": "a bundle"}'}, {R.SIGNATURE_INVALID}),
        (
            "sig-wrong-key",
            {"anchors": TrustAnchors(public_keys=(signed.other_pub.read_bytes(),))},
            # The attestation is signed by the same (now untrusted) key.
            {R.SIGNATURE_INVALID, R.ATTESTATION_INVALID},
        ),
        ("att-missing", {"attestation": None}, {R.ATTESTATION_MISSING}),
        ("att-garbage", {"attestation": b"\xff\x00garbage"}, {R.ATTESTATION_INVALID}),
        (
            "att-subject",
            {"attestation": wrong_subject.read_bytes()},
            {R.ATTESTATION_SUBJECT_MISMATCH},
        ),
        ("att-expired", {"attestation": expired.read_bytes()}, {R.ATTESTATION_EXPIRED}),
        ("att-git", {"record": r(git_sha="f" * 40)}, {R.ATTESTATION_MISMATCH}),
        ("att-dataset", {"record": r(dataset_snapshot="snap-other")}, {R.ATTESTATION_MISMATCH}),
        (
            "runtime-vs-registry",
            {"expect": Expectations(container_digest="sha256:" + "d" * 64)},
            {R.ATTESTATION_MISMATCH},
        ),
        (
            "policy-digest",
            {"record": r(policy_digest="sha256:" + "9" * 64)},
            {R.POLICY_DIGEST_MISMATCH},
        ),
        (
            "runtime-claim",
            {"runtime_policy_digest": "sha256:" + "8" * 64},
            {R.POLICY_DIGEST_MISMATCH},
        ),
        (
            "revalidate",
            {"record": r(card=card(revalidate_by=NOW - timedelta(seconds=1)))},
            {R.REVALIDATION_OVERDUE},
        ),
        ("no-revalidate", {"record": r(card=card(revalidate_by=None))}, {R.REVALIDATION_OVERDUE}),
        ("tenant", {"requester": requester(tenant_id="B")}, {R.TENANT_MISMATCH}),
        ("domain", {"requester": requester(domain="fraud")}, {R.TENANT_MISMATCH}),
        ("purpose", {"requester": requester(purposes=("marketing",))}, {R.PURPOSE_NOT_ALLOWED}),
        ("no-requester", {"requester": None}, {R.TENANT_MISMATCH, R.PURPOSE_NOT_ALLOWED}),
        (
            "downgrade",
            {"record": r(version="2", alias_revision=4), "trusted_state": state(version="3")},
            {R.DOWNGRADE_BLOCKED},
        ),
        (
            "ticket",
            {
                "record": r(version="2", alias_revision=5),
                "trusted_state": state(version="3"),
                "require_change_ticket": True,
            },
            {R.DOWNGRADE_BLOCKED},
        ),
        (
            "pre-check",
            {"pre_checks": (CheckResult.failed("auth", R.AUTH_FAILED, "expired token"),)},
            {R.AUTH_FAILED},
        ),
        (
            "staging-ok-outside-prod",
            {"record": r(stage="Staging"), "environment": "staging"},
            set(),
        ),
        (
            "explicit-alias-move",
            {
                "record": r(version="2", alias_revision=5, change_ticket="CHG-7"),
                "trusted_state": state(version="3"),
                "require_change_ticket": True,
            },
            set(),
        ),
        (
            "allowed-stages-override",
            {"record": r(stage="Staging"), "allowed_stages": ("Staging",)},
            set(),
        ),
    ]


CASE_IDS = [
    "stage",
    "archived",
    "revoked",
    "quarantined",
    "digest-pin",
    "sig-missing",
    "sig-garbage",
    "sig-wrong-key",
    "att-missing",
    "att-garbage",
    "att-subject",
    "att-expired",
    "att-git",
    "att-dataset",
    "runtime-vs-registry",
    "policy-digest",
    "runtime-claim",
    "revalidate",
    "no-revalidate",
    "tenant",
    "domain",
    "purpose",
    "no-requester",
    "downgrade",
    "ticket",
    "pre-check",
    "staging-ok-outside-prod",
    "explicit-alias-move",
    "allowed-stages-override",
]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_each_reason_code_fires_for_its_cause(signed, policy, tmp_path, case_id):
    table = {c[0]: c for c in cases(signed, policy, tmp_path)}
    _, changes, expected = table[case_id]
    decision = decide(facts_for(signed, policy, **changes), policy)
    assert set(decision.reasons) == expected, [c for c in decision.checks if not c.ok]
    assert decision.permitted is (not expected)
    assert decision.event == (Event.STARTUP_DENY if expected else Event.STARTUP_PERMIT)
    # The default policy explains itself through the built-in codes: never POLICY_DENY.
    assert R.POLICY_DENY not in decision.reasons


def test_case_table_is_complete(signed, policy, tmp_path):
    assert [c[0] for c in cases(signed, policy, tmp_path)] == CASE_IDS


def test_one_byte_change_is_denied(signed, policy, tmp_path):
    copy = _tampered(signed, tmp_path)
    decision = decide(facts_for(signed, policy, layout=ModelLayout.from_path(copy)), policy)
    assert not decision.permitted
    assert set(decision.reasons) == {
        R.DIGEST_MISMATCH,
        R.SIGNATURE_INVALID,
        R.ATTESTATION_SUBJECT_MISMATCH,
    }


def test_every_failure_is_listed(signed, policy):
    facts = facts_for(
        signed,
        policy,
        record=rec(
            signed,
            policy,
            stage="Staging",
            revoked=True,
            quarantined=True,
            policy_digest="sha256:" + "9" * 64,
            card=card(tenant_id="B", revalidate_by=NOW - timedelta(days=1)),
        ),
        signature_bundle=None,
        attestation=None,
        requester=requester(purposes=("marketing",)),
    )
    decision = decide(facts, policy)
    assert set(decision.reasons) == {
        R.STAGE_NOT_ALLOWED,
        R.REVOKED,
        R.QUARANTINED,
        R.SIGNATURE_MISSING,
        R.ATTESTATION_MISSING,
        R.POLICY_DIGEST_MISMATCH,
        R.REVALIDATION_OVERDUE,
        R.TENANT_MISMATCH,
        R.PURPOSE_NOT_ALLOWED,
    }
    policy_check = next(c for c in decision.checks if c.name == "policy")
    assert not policy_check.ok
    for code in ("REVOKED", "QUARANTINED", "TENANT_MISMATCH"):
        assert code in policy_check.detail


def _custom(tmp_path: Path, text: str, *, with_default: bool) -> PolicyEngine:
    root = tmp_path / "policy"
    root.mkdir()
    if with_default:
        shutil.copyfile(default_policy_dir() / "download.rego", root / "download.rego")
    (root / "custom.rego").write_text(text)
    return PolicyEngine.from_dir(root)


def test_custom_denial_is_policy_deny_with_message(signed, tmp_path):
    custom = _custom(
        tmp_path,
        "package registry.download\n\nimport rego.v1\n\n"
        "deny contains msg if {\n"
        '    input.requester.subject == "svc-risk"\n'
        '    msg := "change freeze in effect for svc-risk"\n'
        "}\n",
        with_default=True,
    )
    decision = decide(facts_for(signed, custom), custom)
    assert decision.reasons == [R.POLICY_DENY]
    check = next(c for c in decision.checks if c.name == "policy")
    assert check.detail == "change freeze in effect for svc-risk"


def test_custom_denial_naming_an_unfailed_code_is_policy_deny(signed, tmp_path):
    custom = _custom(
        tmp_path,
        "package registry.download\n\nimport rego.v1\n\n"
        'deny contains "REVOKED: the policy thinks so" if true\n',
        with_default=True,
    )
    decision = decide(facts_for(signed, custom), custom)
    assert decision.reasons == [R.POLICY_DENY]


def test_permit_true_policy_cannot_override_failed_checks(signed, tmp_path):
    lax = _custom(
        tmp_path, "package registry.download\n\ndefault permit := true\n", with_default=False
    )
    facts = facts_for(
        signed, lax, record=rec(signed, lax, revoked=True), signature_bundle=b"garbage"
    )
    decision = decide(facts, lax)
    assert not decision.permitted
    assert set(decision.reasons) == {R.REVOKED, R.SIGNATURE_INVALID}
    assert next(c for c in decision.checks if c.name == "policy").ok  # the policy said yes


def test_policy_that_errors_denies(signed, tmp_path):
    broken = _custom(
        tmp_path,
        "package registry.download\n\nimport rego.v1\n\npermit if { no_such_fn(1) }\n",
        with_default=False,
    )
    decision = decide(facts_for(signed, broken), broken)
    assert decision.reasons == [R.POLICY_DENY]
    assert (
        "policy evaluation failed" in next(c for c in decision.checks if c.name == "policy").detail
    )


def test_policy_without_permit_denies(signed, tmp_path):
    silent = _custom(tmp_path, "package registry.download\n\nx := 1\n", with_default=False)
    decision = decide(facts_for(signed, silent), silent)
    assert decision.reasons == [R.POLICY_DENY]


def test_verify_files_mode_skips_registry_checks(signed, policy):
    facts = facts_for(signed, policy, record=None, requester=None, attestation=None)
    decision = decide(facts, policy)
    assert decision.permitted
    names = {c.name for c in decision.checks}
    assert names == {"signature", "policy"}
    assert decision.version is None and decision.model == "model.onnx"


def test_verify_files_mode_with_attestation(signed, policy):
    facts = facts_for(
        signed,
        policy,
        record=None,
        requester=None,
        expect=Expectations(GIT, CONTAINER, DATASET),
    )
    decision = decide(facts, policy)
    assert decision.permitted, decision.to_json()
    assert decision.artifact_digest == signed.digest
    assert decision.git_sha == GIT and decision.dataset_snapshot == DATASET
    wrong = decide(replace(facts, expect=Expectations(GIT, CONTAINER, "other")), policy)
    assert wrong.reasons == [R.ATTESTATION_MISMATCH]


def test_verify_files_mode_required_attestation_missing(signed, policy):
    facts = facts_for(
        signed, policy, record=None, requester=None, attestation=None, require_attestation=True
    )
    assert decide(facts, policy).reasons == [R.ATTESTATION_MISSING]


def test_directory_model(signed, policy, tmp_path):
    layout = ModelLayout.from_path(signed.directory)
    base = facts_for(
        signed,
        policy,
        layout=layout,
        signature_bundle=signed.dir_signature.read_bytes(),
        attestation=signed.dir_attestation.read_bytes(),
        record=rec(signed, policy, artifact_digest=signed.dir_digest, kind="directory"),
    )
    assert decide(base, policy).permitted
    copy = tmp_path / "dirmodel"
    shutil.copytree(signed.directory, copy)
    (copy / "sub" / "tokenizer.txt").write_text("a b d\n")
    tampered = decide(replace(base, layout=ModelLayout.from_path(copy)), policy)
    assert R.SIGNATURE_INVALID in tampered.reasons
    assert R.DIGEST_MISMATCH in tampered.reasons
    shutil.rmtree(copy)
    shutil.copytree(signed.directory, copy)
    (copy / "extra.bin").write_bytes(b"x")
    added = decide(replace(base, layout=ModelLayout.from_path(copy)), policy)
    assert R.SIGNATURE_INVALID in added.reasons


def test_unreadable_layout_fails_closed(signed, policy, tmp_path):
    gone = tmp_path / "gone.onnx"
    shutil.copyfile(signed.model, gone)
    layout = ModelLayout.from_path(gone)
    gone.unlink()
    decision = decide(facts_for(signed, policy, layout=layout), policy)
    assert not decision.permitted
    assert R.SIGNATURE_INVALID in decision.reasons
    assert R.DIGEST_MISMATCH in decision.reasons


def test_decision_json_is_complete(signed, policy):
    doc = decide(
        facts_for(signed, policy, record=rec(signed, policy, revoked=True)), policy
    ).to_json()
    assert doc["event"] == "startup_deny" and doc["decision"] == "deny"
    assert doc["reasons"] == ["REVOKED"]
    for check in doc["checks"]:
        assert set(check) == {"name", "ok", "code", "detail", "ms"}
        assert (check["code"] is None) is check["ok"]


@pytest.mark.parametrize("tamper", [False, True])
def test_concurrent_measurement_of_large_single_files(
    signed, policy, tmp_path, monkeypatch, tamper
):
    """Above the threshold the whole-file digest is measured beside the signature check."""
    import trustload.engine as engine_module

    monkeypatch.setattr(engine_module, "CONCURRENT_MEASURE_BYTES", 0)
    layout = ModelLayout.from_path(_tampered(signed, tmp_path) if tamper else signed.model)
    decision = decide(facts_for(signed, policy, layout=layout), policy)
    if tamper:
        assert set(decision.reasons) == {
            R.DIGEST_MISMATCH,
            R.SIGNATURE_INVALID,
            R.ATTESTATION_SUBJECT_MISMATCH,
        }
    else:
        assert decision.permitted
        assert decision.artifact_digest == signed.digest


def test_conjunction_property(signed, tmp_path):
    """For random Registry records and a policy that always permits, the decision
    permits exactly when every built-in check passed (the policy cannot override)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    lax = _custom(tmp_path, "package registry.download\n\npermit := true\n", with_default=False)
    base = facts_for(signed, lax)

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        stage=st.sampled_from(["Approved", "Staging", "Archived"]),
        revoked=st.booleans(),
        quarantined=st.booleans(),
        tenant=st.sampled_from(["A", "B"]),
        purposes=st.sampled_from([("credit_scoring",), ("marketing",), ()]),
        version=st.sampled_from(["2", "3", "4"]),
        pin_ok=st.booleans(),
        sig=st.sampled_from(["ok", "none", "garbage"]),
    )
    def check(stage, revoked, quarantined, tenant, purposes, version, pin_ok, sig):
        facts = replace(
            base,
            record=replace(
                base.record,
                stage=stage,
                revoked=revoked,
                quarantined=quarantined,
                version=version,
                artifact_digest=signed.digest if pin_ok else "sha256:" + "0" * 64,
                card=card(tenant_id=tenant),
            ),
            requester=requester(purposes=purposes),
            trusted_state=state(version="3", artifact_digest=signed.digest),
            signature_bundle={"ok": base.signature_bundle, "none": None, "garbage": b"{}"}[sig],
        )
        decision = decide(facts, lax)
        builtin = [c for c in decision.checks if c.name != "policy"]
        assert decision.permitted is all(c.ok for c in builtin)
        expected_ok = (
            stage == "Approved"
            and not revoked
            and not quarantined
            and tenant == "A"
            and purposes == ("credit_scoring",)
            and version in ("3", "4")
            and pin_ok
            and sig == "ok"
        )
        assert decision.permitted is expected_ok, decision.reasons

    check()


def test_verify_files_recompiles_an_edited_policy(signed, tmp_path):
    """The per-process policy cache is keyed by content: an edit takes effect at once."""
    import trustload

    root = tmp_path / "policy"
    root.mkdir()
    shutil.copyfile(default_policy_dir() / "download.rego", root / "download.rego")
    kwargs = {"signature": signed.signature, "public_keys": [signed.pub], "policy_dir": root}
    assert trustload.verify_files(signed.model, **kwargs).permitted
    (root / "extra.rego").write_text(
        'package registry.download\n\nimport rego.v1\n\ndeny contains "frozen" if true\n'
    )
    decision = trustload.verify_files(signed.model, **kwargs)
    assert decision.reasons == [R.POLICY_DENY]
    assert (
        decision.policy_digest
        != trustload.verify_files(signed.model, **{**kwargs, "policy_dir": None}).policy_digest
    )


# ------------------------------------------------- one decision, re-run from memory


def _permit_outcome(signed, policy):
    from trustload.engine import evaluate

    outcome = evaluate(facts_for(signed, policy), policy)
    assert outcome.decision.permitted and outcome.verified is not None
    assert outcome.verified.artifact_digest == signed.digest
    return outcome


def test_redecision_reuses_the_measured_digest_without_rehashing(signed, policy, tmp_path):
    """A re-decision (refresh) runs every rule but never touches the model bytes again:
    here the layout points at a file that no longer exists, and it still permits."""
    verified = _permit_outcome(signed, policy).verified
    gone = ModelLayout("file", "model.onnx", (("model.onnx", tmp_path / "absent.onnx"),))
    again = decide(facts_for(signed, policy, layout=gone, verified=verified), policy)
    assert again.permitted, again.to_json()["reasons"]
    sig = next(c for c in again.checks if c.name == "signature")
    assert "verified at load" in sig.detail
    names = {c.name for c in again.checks}
    assert {"digest", "attestation_validity", "policy_digest", "revalidation", "policy"} <= names


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"now": NOW + timedelta(days=3650)}, {R.REVALIDATION_OVERDUE}),
        ({"record_policy": "sha256:" + "9" * 64}, {R.POLICY_DIGEST_MISMATCH}),
        ({"record_digest": "sha256:" + "8" * 64}, {R.DIGEST_MISMATCH}),
        ({"stage": "Staging"}, {R.STAGE_NOT_ALLOWED}),
        ({"revoked": True}, {R.REVOKED}),
    ],
)
def test_redecision_denies_for_each_rule(signed, policy, changes, expected):
    verified = _permit_outcome(signed, policy).verified
    base = facts_for(signed, policy, verified=verified)
    over = {}
    if "record_policy" in changes:
        over["policy_digest"] = changes["record_policy"]
    if "record_digest" in changes:
        over["artifact_digest"] = changes["record_digest"]
    for key in ("stage", "revoked"):
        if key in changes:
            over[key] = changes[key]
    facts = replace(base, record=replace(base.record, **over), now=changes.get("now", NOW))
    decision = decide(facts, policy)
    assert not decision.permitted
    assert expected <= set(decision.reasons), decision.to_json()["reasons"]


def test_redecision_rejudges_the_attestation_window(signed, policy, tmp_path):
    """The attestation held in memory is re-verified against the clock of the refresh."""
    from trustload.signing import attest

    short = attest(
        signed.model,
        signed.key,
        git_sha=GIT,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(hours=1),
        out=tmp_path / "short.att.json",
    )
    first = facts_for(signed, policy, attestation=short.read_bytes())
    from trustload.engine import evaluate

    outcome = evaluate(first, policy)
    assert outcome.decision.permitted, outcome.decision.to_json()["reasons"]
    later = replace(first, now=NOW + timedelta(hours=2), verified=outcome.verified)
    assert R.ATTESTATION_EXPIRED in decide(later, policy).reasons


def test_one_fail_closed_wrapper_maps_a_crash_to_the_checks_own_code(signed, policy):
    """An unexpected error inside a record check is that check's code on every path
    (the gate's early checks and the engine run the same table through one wrapper)."""
    from trustload.decision import checked, timed
    from trustload.engine import record_facts
    from trustload.errors import TrustloadError
    from trustload.rules import RECORD_CHECKS, run_checks

    def boom() -> CheckResult:
        raise KeyError("surprise")

    assert timed("stage", boom, R.STAGE_NOT_ALLOWED).code is R.STAGE_NOT_ALLOWED
    assert timed("anything", boom).code is R.POLICY_DENY
    empty = checked("attestation", R.ATTESTATION_INVALID, list)  # no verdict at all
    assert [c.code for c in empty] == [R.ATTESTATION_INVALID]

    def typed() -> CheckResult:
        raise TrustloadError(R.REVOKED, "typed errors keep their code")

    assert timed("stage", typed, R.STAGE_NOT_ALLOWED).code is R.REVOKED
    facts = facts_for(signed, policy)
    broken = replace(facts, record=replace(facts.record, card=None))  # card access crashes
    results = {c.name: c for c in run_checks(RECORD_CHECKS, record_facts(broken, policy))}
    for name, code, _ in RECORD_CHECKS:
        if name in {"revalidation", "tenant", "purpose"}:
            assert results[name].code is code, results[name]
    assert decide(broken, policy).permitted is False
