"""The one table of record checks: every rule that needs only the Registry record and
the runtime's local facts (R2.3, R2.4, R2.7-R2.9, R5), as ``(name, code, fn)`` rows.

The gate's early denial (before any download), :func:`trustload.engine.evaluate` (start-up,
rollback, ``verify``) and the re-decision on refresh all run these rows, each through the
one fail-closed wrapper (:func:`trustload.decision.timed` with the row's own code), so no
path keeps a shorter list of its own and a crash in a check is that check's code on every
path. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from trustload.checks.downgrade import check_downgrade
from trustload.checks.policy_digest import check_policy_digest
from trustload.checks.revocation import check_quarantined, check_revoked
from trustload.checks.stage import check_stage
from trustload.checks.tenancy import check_purpose, check_tenant
from trustload.checks.validity import check_revalidation
from trustload.decision import CheckResult, ReasonCode, timed
from trustload.facts import Requester, TrustedState, VersionRecord


@dataclass(frozen=True)
class RecordFacts:
    """What the record checks read: the Registry record and the runtime's local facts."""

    record: VersionRecord
    environment: str
    allowed_stages: tuple[str, ...] | None  # None: the environment's default (may raise)
    now: datetime
    policy_digest: str | None  # digest of the bundle loaded now; None: unusable
    claimed_policy_digest: str | None = None
    policy_error: str | None = None
    requester: Requester | None = None
    trusted_state: TrustedState | None = None
    require_change_ticket: bool = False


def _policy_digest(f: RecordFacts) -> CheckResult:
    if f.policy_digest is None:
        return CheckResult.failed(
            "policy_digest",
            ReasonCode.POLICY_DIGEST_MISMATCH,
            f"runtime policy bundle unusable: {f.policy_error or 'not loaded'}",
        )
    return check_policy_digest(f.policy_digest, f.record.policy_digest, f.claimed_policy_digest)


RecordCheck = tuple[str, ReasonCode, Callable[[RecordFacts], CheckResult]]

# R2.3 / R2.4: standing of the version itself (also what makes the gate stop early).
STANDING_CHECKS: tuple[RecordCheck, ...] = (
    (
        "stage",
        ReasonCode.STAGE_NOT_ALLOWED,
        lambda f: check_stage(f.record.stage, f.environment, f.allowed_stages),
    ),
    (
        "revoked",
        ReasonCode.REVOKED,
        lambda f: check_revoked(f.record.revoked, f.record.revoked_reason),
    ),
    (
        "quarantined",
        ReasonCode.QUARANTINED,
        lambda f: check_quarantined(f.record.quarantined, f.record.quarantine_reason),
    ),
)
# R2.7-R2.9, R5: the runtime's policy, the card's dates and ABAC, anti-downgrade.
GOVERNANCE_CHECKS: tuple[RecordCheck, ...] = (
    ("policy_digest", ReasonCode.POLICY_DIGEST_MISMATCH, _policy_digest),
    (
        "revalidation",
        ReasonCode.REVALIDATION_OVERDUE,
        lambda f: check_revalidation(f.record.card.revalidate_by, f.now),
    ),
    ("tenant", ReasonCode.TENANT_MISMATCH, lambda f: check_tenant(f.requester, f.record.card)),
    (
        "purpose",
        ReasonCode.PURPOSE_NOT_ALLOWED,
        lambda f: check_purpose(f.requester, f.record.card),
    ),
    (
        "downgrade",
        ReasonCode.DOWNGRADE_BLOCKED,
        lambda f: check_downgrade(
            f.record, f.trusted_state, require_change_ticket=f.require_change_ticket
        ),
    ),
)
# Every check that needs only the record, in decision order (no download, no hashing).
RECORD_CHECKS: tuple[RecordCheck, ...] = STANDING_CHECKS + GOVERNANCE_CHECKS


def run_checks(table: Sequence[RecordCheck], facts: RecordFacts) -> list[CheckResult]:
    """Run a slice of the record-check table, each through the one fail-closed wrapper."""
    return [timed(name, partial(fn, facts), code) for name, code, fn in table]
