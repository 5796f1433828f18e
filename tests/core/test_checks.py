"""Table-driven unit tests of the pure built-in checks: facts -> expected code."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.core.builders import (
    DIGEST_A,
    DIGEST_B,
    NOW,
    POLICY_X,
    POLICY_Y,
    card,
    record,
    requester,
    state,
)
from trustload.checks.digest import check_digest
from trustload.checks.downgrade import check_downgrade, compare_versions
from trustload.checks.policy_digest import check_policy_digest
from trustload.checks.revocation import check_quarantined, check_revoked
from trustload.checks.stage import (
    UnknownEnvironment,
    allowed_stages_for,
    check_stage,
    default_allowed_stages,
)
from trustload.checks.tenancy import check_purpose, check_tenant
from trustload.checks.validity import check_revalidation
from trustload.decision import ReasonCode as R

STAGE = "STAGE_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("stage", "env", "allowed", "code"),
    [
        ("Approved", "prod", None, None),
        ("Staging", "prod", None, R.STAGE_NOT_ALLOWED),
        ("Archived", "prod", None, R.STAGE_NOT_ALLOWED),
        ("Staging", "staging", None, None),
        ("Approved", "staging", None, None),
        ("Archived", "staging", None, R.STAGE_NOT_ALLOWED),
        ("Approved", "Production", None, None),
        ("Staging", "production", None, R.STAGE_NOT_ALLOWED),
        ("Staging", "prod", ("Staging",), None),
        ("Approved", "dev", (), R.STAGE_NOT_ALLOWED),
        ("approved", "prod", None, R.STAGE_NOT_ALLOWED),  # case matters: exact stage names
    ],
)
def test_stage(stage, env, allowed, code):
    result = check_stage(stage, env, allowed)
    assert result.code == code
    assert result.ok is (code is None)
    assert result.name == "stage"


def test_default_allowed_stages():
    assert default_allowed_stages("prod") == ("Approved",)
    assert default_allowed_stages("staging") == ("Staging", "Approved")


PROD = ("Approved",)
NONPROD = ("Staging", "Approved")


@pytest.mark.parametrize(
    ("env", "stages"),
    [
        ("prod", PROD),
        ("production", PROD),
        ("Production", PROD),
        ("PROD", PROD),
        ("staging", NONPROD),
        ("dev", NONPROD),
        ("development", NONPROD),
        ("test", NONPROD),
        ("qa", NONPROD),
        # names that merely look like a known one have no default (INTERFACE.md)
        ("prd", None),
        ("production-eu", None),
        ("prod-eu", None),
        ("produciton", None),  # a typo
        ("stagging", None),
        ("preprod", None),
        ("local", None),
        ("", None),
        (" prod", None),
        ("prod\n", None),
    ],
)
def test_environment_table(env, stages):
    """Known names map as INTERFACE.md says; every other name fails closed."""
    if stages is None:
        with pytest.raises(UnknownEnvironment):
            default_allowed_stages(env)
        # even if a config bypassed validation, the check denies rather than admits
        assert check_stage("Staging", env).code == R.STAGE_NOT_ALLOWED
        assert check_stage("Approved", env).code == R.STAGE_NOT_ALLOWED
    else:
        assert default_allowed_stages(env) == stages
        assert allowed_stages_for(env) == stages


@pytest.mark.parametrize(
    ("env", "explicit", "stages"),
    [
        ("prd", ["Approved"], ("Approved",)),
        ("production-eu", ["Staging", "Approved"], ("Staging", "Approved")),
        ("prod", ["Approved"], ("Approved",)),
        ("canary", [], ()),
        ("prd", ["approved"], None),  # stage names are exact
        ("prd", ["Approved", "Live"], None),
    ],
)
def test_explicit_allowed_stages(env, explicit, stages):
    if stages is None:
        with pytest.raises(UnknownEnvironment):
            allowed_stages_for(env, explicit)
    else:
        assert allowed_stages_for(env, explicit) == stages


@pytest.mark.parametrize(
    ("value", "ok"),
    [(False, True), (True, False), (None, False), (0, False), ("false", False)],
)
def test_revoked_and_quarantined_fail_closed_on_odd_values(value, ok):
    revoked = check_revoked(value, "leaked")
    quarantined = check_quarantined(value, "under review")
    assert revoked.ok is ok and quarantined.ok is ok
    if not ok:
        assert revoked.code == R.REVOKED and "leaked" in revoked.detail
        assert quarantined.code == R.QUARANTINED and "under review" in quarantined.detail


@pytest.mark.parametrize(
    ("measured", "pinned", "code"),
    [
        (DIGEST_A, DIGEST_A, None),
        (DIGEST_B, DIGEST_A, R.DIGEST_MISMATCH),
        (None, DIGEST_A, R.DIGEST_MISMATCH),
        ("a" * 64, "a" * 64, R.DIGEST_MISMATCH),  # not a sha256: digest
        (DIGEST_A.upper(), DIGEST_A, R.DIGEST_MISMATCH),
        (DIGEST_A, "", R.DIGEST_MISMATCH),
    ],
)
def test_digest(measured, pinned, code):
    assert check_digest(measured, pinned).code == code


@pytest.mark.parametrize(
    ("runtime", "registry", "claimed", "code"),
    [
        (POLICY_X, POLICY_X, None, None),
        (POLICY_X, POLICY_X, POLICY_X, None),
        (POLICY_X, POLICY_Y, None, R.POLICY_DIGEST_MISMATCH),
        (POLICY_X, POLICY_X, POLICY_Y, R.POLICY_DIGEST_MISMATCH),
        (POLICY_X, "", None, R.POLICY_DIGEST_MISMATCH),
    ],
)
def test_policy_digest(runtime, registry, claimed, code):
    assert check_policy_digest(runtime, registry, claimed).code == code


@pytest.mark.parametrize(
    ("revalidate_by", "now", "code"),
    [
        (NOW + timedelta(days=1), NOW, None),
        (NOW, NOW, None),  # inclusive: now <= revalidate_by
        (NOW - timedelta(seconds=1), NOW, R.REVALIDATION_OVERDUE),
        (None, NOW, R.REVALIDATION_OVERDUE),
        ((NOW + timedelta(hours=1)).replace(tzinfo=None), NOW, None),  # naive = UTC
        ((NOW - timedelta(hours=1)).replace(tzinfo=None), NOW, R.REVALIDATION_OVERDUE),
    ],
)
def test_revalidation(revalidate_by, now, code):
    result = check_revalidation(revalidate_by, now)
    assert result.code == code
    assert result.name == "revalidation"


@pytest.mark.parametrize(
    ("who", "the_card", "code"),
    [
        (requester(), card(), None),
        (requester(tenant_id="B"), card(), R.TENANT_MISMATCH),
        (requester(tenant_id=""), card(), R.TENANT_MISMATCH),
        (None, card(), R.TENANT_MISMATCH),
        (requester(domain="fraud"), card(), R.TENANT_MISMATCH),
        (requester(domain=None), card(), None),
        (requester(tenant_id="a"), card(), R.TENANT_MISMATCH),
    ],
)
def test_tenant(who, the_card, code):
    assert check_tenant(who, the_card).code == code


@pytest.mark.parametrize(
    ("purposes", "allowed", "code"),
    [
        (("credit_scoring",), ("credit_scoring",), None),
        (("marketing", "credit_scoring"), ("credit_scoring",), None),
        (("marketing",), ("credit_scoring",), R.PURPOSE_NOT_ALLOWED),
        ((), ("credit_scoring",), R.PURPOSE_NOT_ALLOWED),
        (("credit_scoring",), (), R.PURPOSE_NOT_ALLOWED),
    ],
)
def test_purpose(purposes, allowed, code):
    result = check_purpose(requester(purposes=purposes), card(purposes_allowed=allowed))
    assert result.code == code


def test_purpose_without_requester_fails_closed():
    assert check_purpose(None, card()).code == R.PURPOSE_NOT_ALLOWED


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        ("3", "3", 0),
        ("10", "9", 1),
        ("9", "10", -1),
        ("1.2.10", "1.2.9", 1),
        ("1.2", "1.2.0", 0),
        ("2", "1.9", 1),
        ("v2", "v1", None),
        ("3", "3a", None),
        ("9" * 101, "1", None),
    ],
)
def test_compare_versions(a, b, order):
    assert compare_versions(a, b) == order


@pytest.mark.parametrize(
    ("rec", "trusted", "ticket", "code"),
    [
        (record(), None, False, None),  # nothing trusted yet
        (record(version="4", artifact_digest=DIGEST_B), state(), False, None),  # newer
        (record(), state(), False, None),  # same version, same bytes
        (record(artifact_digest=DIGEST_B), state(), False, R.DOWNGRADE_BLOCKED),  # swapped
        (record(version="2", alias_revision=4), state(), False, R.DOWNGRADE_BLOCKED),
        (record(version="2", alias_revision=5), state(), False, None),  # explicit move
        (record(version="2", alias_revision=5), state(), True, R.DOWNGRADE_BLOCKED),
        (record(version="2", alias_revision=5, change_ticket="CHG-1"), state(), True, None),
        (
            record(version="2", alias_revision=5, change_ticket="  "),
            state(),
            True,
            R.DOWNGRADE_BLOCKED,
        ),
        (record(version="2", alias=None, alias_revision=None), state(), False, R.DOWNGRADE_BLOCKED),
        (
            record(version="2", alias="canary", alias_revision=9),
            state(),
            False,
            R.DOWNGRADE_BLOCKED,
        ),
        (
            record(version="2", alias_revision=5),
            state(alias_revision=None),
            False,
            R.DOWNGRADE_BLOCKED,
        ),
        (record(version="10"), state(version="9"), False, None),  # numeric, not lexical
        (record(version="9", alias_revision=4), state(version="10"), False, R.DOWNGRADE_BLOCKED),
        (record(version="beta"), state(version="alpha"), False, R.DOWNGRADE_BLOCKED),
        (record(version="beta", alias_revision=5), state(version="alpha"), False, None),
        (record(name="other"), state(), False, R.DOWNGRADE_BLOCKED),
    ],
)
def test_downgrade(rec, trusted, ticket, code):
    result = check_downgrade(rec, trusted, require_change_ticket=ticket)
    assert result.code == code, result.detail
    assert result.name == "downgrade"
