"""The shipped default policy (R4) and custom policies, evaluated with real regopy."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests.core.builders import DIGEST_A, DIGEST_B, NOW, POLICY_X, record, requester
from trustload.decision import CheckResult, ReasonCode
from trustload.engine import policy_result
from trustload.errors import UsageError
from trustload.policy import (
    AttestationView,
    PolicyEngine,
    PolicyInputs,
    build_input,
    default_policy_dir,
)


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine.from_dir(default_policy_dir())


def happy_input(digest: str) -> dict:
    return build_input(
        PolicyInputs(
            mode="gate",
            now=NOW,
            environment="prod",
            allowed_stages=("Approved",),
            runtime_policy_digest=digest,
            artifact_digest=DIGEST_A,
            artifact_kind="file",
            signature_present=True,
            signature_valid=True,
            signer="key:abc",
            attestation_required=True,
            attestation_present=True,
            attestation_valid=True,
            attestation=AttestationView(subjects=(DIGEST_A,), git_sha="g"),
            record=record(policy_digest=digest),
            requester=requester(),
        )
    )


def test_happy_input_permits(engine):
    verdict = engine.evaluate(happy_input(engine.digest))
    assert verdict.permit is True
    assert verdict.denials == ()
    assert verdict.error is None


def _set(doc: dict, dotted: str, value) -> dict:
    out = copy.deepcopy(doc)
    node = out
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    return out


# One case per R4 clause (plus the digest pin): the field to break, and the code the
# deny message must name.
R4_CLAUSES = [
    ("resource.stage", "Staging", "STAGE_NOT_ALLOWED"),
    ("resource.stage", None, "STAGE_NOT_ALLOWED"),
    ("resource.revoked", True, "REVOKED"),
    ("resource.revoked", None, "REVOKED"),
    ("resource.quarantined", True, "QUARANTINED"),
    ("signature.valid", False, "SIGNATURE_INVALID"),
    ("signature.present", False, "SIGNATURE_MISSING"),
    ("attestation.present", False, "ATTESTATION_MISSING"),
    ("attestation.valid", False, "ATTESTATION_INVALID"),
    ("attestation.subject", DIGEST_B, "ATTESTATION_SUBJECT_MISMATCH"),
    ("attestation.subject", None, "ATTESTATION_SUBJECT_MISMATCH"),
    ("runtime.policy_digest", "sha256:" + "9" * 64, "POLICY_DIGEST_MISMATCH"),
    ("runtime.policy_digest", None, "POLICY_DIGEST_MISMATCH"),
    ("requester.tenant", "B", "TENANT_MISMATCH"),
    ("requester.tenant", None, "TENANT_MISMATCH"),
    ("requester.purpose", ["marketing"], "PURPOSE_NOT_ALLOWED"),
    ("requester.purpose", [], "PURPOSE_NOT_ALLOWED"),
    ("resource.lifecycle.revalidate_by", "2026-11-27T00:00:00+00:00", "REVALIDATION_OVERDUE"),
    ("resource.lifecycle.revalidate_by", None, "REVALIDATION_OVERDUE"),
    ("resource.lifecycle.revalidate_by", "2027-01-01T00:00:00Z", "REVALIDATION_OVERDUE"),
    ("now", "garbage", "REVALIDATION_OVERDUE"),
    ("artifact.sha256", DIGEST_B, "DIGEST_MISMATCH"),
    ("mode", "other", "POLICY_DENY"),
]


@pytest.mark.parametrize(("field", "value", "code"), R4_CLAUSES)
def test_default_policy_denies_each_clause(engine, field, value, code):
    verdict = engine.evaluate(_set(happy_input(engine.digest), field, value))
    assert verdict.permit is False
    assert any(m.startswith(code + ":") for m in verdict.denials), verdict.denials


def test_tenant_and_resource_both_null_is_not_a_match(engine):
    doc = _set(happy_input(engine.digest), "requester.tenant", None)
    doc = _set(doc, "resource.tenant", None)
    verdict = engine.evaluate(doc)
    assert not verdict.permit
    assert any(m.startswith("TENANT_MISMATCH") for m in verdict.denials)


def test_staging_allowed_outside_prod(engine):
    doc = _set(happy_input(engine.digest), "resource.stage", "Staging")
    doc = _set(doc, "allowed_stages", ["Staging", "Approved"])
    assert engine.evaluate(doc).permit


def test_files_mode_needs_only_the_evidence(engine):
    files = build_input(
        PolicyInputs(
            mode="files",
            now=NOW,
            environment="local",
            allowed_stages=(),
            runtime_policy_digest=engine.digest,
            artifact_digest=None,
            artifact_kind="file",
            signature_present=True,
            signature_valid=True,
            attestation_required=False,
        )
    )
    assert engine.evaluate(files).permit
    assert not engine.evaluate(_set(files, "signature.valid", False)).permit
    required = _set(files, "attestation.required", True)
    verdict = engine.evaluate(required)
    assert verdict.denials == ("ATTESTATION_MISSING: no attestation",)


def test_missing_fields_deny(engine):
    """A policy input with fields missing (not our builder) never permits."""
    assert not engine.evaluate({}).permit
    doc = happy_input(engine.digest)
    del doc["resource"]["revoked"]
    verdict = engine.evaluate(doc)
    assert not verdict.permit


def write_policy(root: Path, text: str, name: str = "policy.rego") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)
    return root


def test_custom_extension_adds_denial(tmp_path, engine):
    root = tmp_path / "custom"
    root.mkdir()
    (root / "download.rego").write_bytes((default_policy_dir() / "download.rego").read_bytes())
    write_policy(
        root,
        "package registry.download\n\nimport rego.v1\n\n"
        'deny contains "weekend freeze: no model changes" if {\n'
        '    input.resource.name == "risk-default"\n'
        "}\n",
        "freeze.rego",
    )
    custom = PolicyEngine.from_dir(root)
    assert custom.digest != engine.digest
    verdict = custom.evaluate(happy_input(custom.digest))
    assert not verdict.permit
    assert verdict.denials == ("weekend freeze: no model changes",)
    check = policy_result(verdict, [CheckResult.passed("signature")], custom.digest)
    assert check.code == ReasonCode.POLICY_DENY
    assert "weekend freeze" in check.detail


def test_old_style_deny_object_is_read(tmp_path):
    root = write_policy(
        tmp_path / "old",
        "package registry.download\n\ndefault permit := true\n\n"
        'deny[msg] { input.resource.revoked == true; msg := "REVOKED: old style" }\n',
    )
    eng = PolicyEngine.from_dir(root)
    doc = {"resource": {"revoked": True}}
    verdict = eng.evaluate(doc)
    assert verdict.denials == ("REVOKED: old style",)
    assert not verdict.permit
    assert eng.evaluate({"resource": {"revoked": False}}).permit


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("package registry.download\n\npermit := 1\n", "not a boolean"),
        ("package somewhere.else\n\npermit := true\n", "undefined"),
        ('package registry.download\n\npermit := true\ndeny := "x"\n', "neither"),
        ("package registry.download\n\npermit := true\n\npermit := false\n", None),
        ("package registry.download\n\nimport rego.v1\n\npermit if { 1 / input.zero > 0 }\n", None),
        ("package registry.download\n\nimport rego.v1\n\npermit if { undefined_fn(1) }\n", None),
    ],
)
def test_odd_policies_deny(tmp_path, text, reason):
    try:
        eng = PolicyEngine.from_dir(write_policy(tmp_path / "odd", text))
    except UsageError:
        return  # refused at compile time: also a non-permit
    verdict = eng.evaluate({"zero": 0})
    assert verdict.permit is False
    if reason is not None:
        assert verdict.error is not None and reason in verdict.error


@pytest.mark.parametrize(
    "text",
    [
        "package registry.download\n permit if {",
        "this is not rego",
        "package registry.download\n\ndeny contains msg if {\n",
    ],
)
def test_malformed_rego_is_a_usage_error(tmp_path, text):
    with pytest.raises(UsageError, match="does not compile"):
        PolicyEngine.from_dir(write_policy(tmp_path / "bad", text))


def test_permit_true_policy_cannot_override_failed_check(tmp_path):
    eng = PolicyEngine.from_dir(
        write_policy(tmp_path / "lax", "package registry.download\n\npermit := true\n")
    )
    verdict = eng.evaluate({})
    assert verdict.permit
    check = policy_result(
        verdict, [CheckResult.failed("revoked", ReasonCode.REVOKED, "x")], eng.digest
    )
    assert check.ok  # the policy itself permits...
    # ...but the engine's decision is the conjunction (see tests/core/test_engine.py).


def test_policy_result_explanations():
    from trustload.policy import PolicyVerdict

    sig_missing = CheckResult.failed("signature", ReasonCode.SIGNATURE_MISSING, "none")
    # Same family: the policy says SIGNATURE_INVALID, the check said SIGNATURE_MISSING.
    check = policy_result(
        PolicyVerdict(False, ("SIGNATURE_INVALID: not valid",)), [sig_missing], POLICY_X
    )
    assert check.code == ReasonCode.SIGNATURE_MISSING
    # Unexplained code: REVOKED but the revocation check passed.
    check = policy_result(
        PolicyVerdict(False, ("REVOKED: says the policy",)),
        [sig_missing, CheckResult.passed("revoked")],
        POLICY_X,
    )
    assert check.code == ReasonCode.POLICY_DENY and "says the policy" in check.detail
    # No message and no failing check.
    check = policy_result(PolicyVerdict(False, ()), [CheckResult.passed("signature")], POLICY_X)
    assert check.code == ReasonCode.POLICY_DENY
    # Evaluation error.
    check = policy_result(PolicyVerdict(False, (), "boom"), [], POLICY_X)
    assert check.code == ReasonCode.POLICY_DENY and check.detail == "boom"
    # Unknown code word is never an explanation.
    check = policy_result(PolicyVerdict(False, ("NOT_A_CODE: x",)), [sig_missing], POLICY_X)
    assert check.code == ReasonCode.POLICY_DENY


def test_evaluation_is_fast_enough(engine):
    import time

    doc = happy_input(engine.digest)
    engine.evaluate(doc)
    start = time.perf_counter()
    for _ in range(50):
        engine.evaluate(doc)
    per_call_ms = (time.perf_counter() - start) * 1000 / 50
    assert per_call_ms < 50  # generous bound; about 1 ms here


@pytest.mark.parametrize("tenant", ['B"quoted', "back\\slash", "new\nline", "é"])
def test_strings_with_quotes_come_back_exact(engine, tenant):
    """regopy's own JSON rendering does not escape strings; we read the node tree."""
    verdict = engine.evaluate(_set(happy_input(engine.digest), "requester.tenant", tenant))
    assert verdict.error is None
    assert not verdict.permit
    (msg,) = verdict.denials
    assert msg == f"TENANT_MISMATCH: requester tenant {tenant}, model tenant A"


def test_literal_messages_with_escapes_are_unescaped(tmp_path):
    root = write_policy(
        tmp_path / "esc",
        "package registry.download\n\nimport rego.v1\n\ndefault permit := false\n\n"
        'deny contains "POLICY_DENY: say \\"no\\"" if true\n'
        'old[msg] { msg := "OLD: \\"x\\"" }\n',
    )
    verdict = PolicyEngine.from_dir(root).evaluate({})
    assert verdict.denials == ('POLICY_DENY: say "no"',)
