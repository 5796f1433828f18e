"""Property tests of the R4 input builder: every field always present, Rego-safe times."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from trustload.decision import CheckResult, ReasonCode
from trustload.facts import ModelCard, Requester, VersionRecord
from trustload.policy import (
    AttestationView,
    PolicyEngine,
    PolicyInputs,
    build_input,
    default_policy_dir,
)
from trustload.policy.input import rego_time

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")

texts = st.text(max_size=20)
opt_texts = st.one_of(st.none(), texts)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)
moments = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.one_of(st.none(), zones),
)
opt_moments = st.one_of(st.none(), moments)
digests = st.one_of(
    st.none(),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h),
)

cards = st.builds(
    ModelCard,
    tenant_id=texts,
    domain=texts,
    purposes_allowed=st.lists(texts, max_size=3).map(tuple),
    revalidate_by=opt_moments,
)
records = st.builds(
    VersionRecord,
    name=texts,
    version=texts,
    stage=st.sampled_from(["Staging", "Approved", "Archived", ""]),
    artifact_digest=texts,
    artifact_size=st.integers(min_value=0),
    kind=st.sampled_from(["file", "directory"]),
    format=opt_texts,
    policy_digest=texts,
    git_sha=texts,
    container_digest=texts,
    dataset_snapshot=texts,
    revoked=st.booleans(),
    quarantined=st.booleans(),
    card=cards,
    alias=opt_texts,
    alias_revision=st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
    change_ticket=opt_texts,
)
requesters = st.builds(
    Requester,
    subject=texts,
    tenant_id=texts,
    domain=opt_texts,
    purposes=st.lists(texts, max_size=3).map(tuple),
    caller=texts,
)
views = st.builds(
    AttestationView,
    subjects=st.lists(digests.filter(lambda d: d is not None), max_size=3).map(tuple),
    predicate_type=opt_texts,
    git_sha=opt_texts,
    container_digest=opt_texts,
    dataset_snapshot=opt_texts,
    not_before=opt_moments,
    not_after=opt_moments,
    signer=opt_texts,
)
check_results = st.builds(
    lambda name, code: CheckResult.passed(name) if code is None else CheckResult.failed(name, code),
    st.sampled_from(["signature", "stage", "digest", "policy_digest"]),
    st.one_of(st.none(), st.sampled_from(list(ReasonCode))),
)
inputs = st.builds(
    PolicyInputs,
    mode=st.sampled_from(["gate", "files"]),
    now=moments,
    environment=texts,
    allowed_stages=st.lists(st.sampled_from(["Staging", "Approved"]), max_size=2).map(tuple),
    runtime_policy_digest=digests,
    artifact_digest=digests,
    artifact_kind=st.sampled_from(["file", "directory", None]),
    signature_present=st.booleans(),
    signature_valid=st.booleans(),
    signer=opt_texts,
    attestation_required=st.booleans(),
    attestation_present=st.booleans(),
    attestation_valid=st.booleans(),
    attestation=st.one_of(st.none(), views),
    record=st.one_of(st.none(), records),
    requester=st.one_of(st.none(), requesters),
    checks=st.lists(check_results, max_size=5).map(tuple),
)


def _shape(doc):
    if isinstance(doc, dict):
        return {k: _shape(v) for k, v in doc.items() if k != "checks"}
    return None


# The shape of the sparsest possible input: every other input must have the same keys.
REFERENCE = _shape(
    build_input(
        PolicyInputs(
            mode="files",
            now=datetime(2026, 1, 1, tzinfo=UTC),
            environment="x",
            allowed_stages=(),
            runtime_policy_digest=None,
            artifact_digest=None,
            artifact_kind=None,
            signature_present=False,
            signature_valid=False,
        )
    )
)


@settings(max_examples=80, deadline=None)
@given(inputs)
def test_every_field_always_present(p):
    doc = build_input(p)
    json.dumps(doc)  # JSON-serialisable, nothing exotic
    assert _shape(doc) == REFERENCE
    assert TIME_RE.match(doc["now"])
    for value in (
        doc["resource"]["lifecycle"]["revalidate_by"],
        doc["attestation"]["not_before"],
        doc["attestation"]["not_after"],
    ):
        assert value is None or TIME_RE.match(value)
    assert isinstance(doc["resource"]["purpose"]["allowed"], list)
    assert isinstance(doc["requester"]["purpose"], list)
    for name, state in doc["checks"].items():
        assert set(state) == {"ok", "code"}
        assert state["ok"] is all(c.ok for c in p.checks if c.name == name)


ENGINE = None


@settings(max_examples=60, deadline=None)
@given(inputs)
def test_default_policy_never_permits_what_the_checks_reject(p):
    """Over arbitrary inputs the default policy permits only if the R4 clauses hold."""
    global ENGINE
    if ENGINE is None:
        ENGINE = PolicyEngine.from_dir(default_policy_dir())
    doc = build_input(p)
    verdict = ENGINE.evaluate(doc)
    if verdict.permit:
        assert doc["signature"]["valid"] is True
        if doc["mode"] == "gate":
            r = doc["resource"]
            assert r["revoked"] is False and r["quarantined"] is False
            assert r["stage"] in doc["allowed_stages"]
            assert doc["requester"]["tenant"] == r["tenant"]
            assert doc["attestation"]["present"] is True
            assert doc["attestation"]["subject"] == doc["artifact"]["sha256"] is not None
    else:
        # The default policy always explains itself: no silent denial.
        assert verdict.denials, doc
        assert verdict.error is None


def test_rego_time_normalises():
    aware = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert rego_time(aware) == "2026-05-01T10:00:00+00:00"
    assert rego_time(datetime(2026, 5, 1, 12, 0)) == "2026-05-01T12:00:00+00:00"
    assert rego_time(None) is None
