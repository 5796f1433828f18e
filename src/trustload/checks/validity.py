"""R2.8 (model card part): ``now <= revalidate_by``.

The attestation's notBefore / notAfter window is checked with the attestation
(``checks.attestation``, with the configured clock-skew leeway). ``revalidate_by`` is
a governance date, not a cryptographic window, so no leeway applies here; a card
without ``revalidate_by`` fails closed. Naive datetimes are taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from trustload.decision import CheckResult, ReasonCode, rfc3339

NAME = "revalidation"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_revalidation(revalidate_by: datetime | None, now: datetime) -> CheckResult:
    """Pass iff the model card names a ``revalidate_by`` and ``now`` is not past it."""
    if revalidate_by is None:
        return CheckResult.failed(
            NAME, ReasonCode.REVALIDATION_OVERDUE, "model card has no revalidate_by"
        )
    if _utc(now) > _utc(revalidate_by):
        return CheckResult.failed(
            NAME,
            ReasonCode.REVALIDATION_OVERDUE,
            f"revalidation was due by {rfc3339(_utc(revalidate_by))}",
        )
    return CheckResult.passed(NAME, f"revalidate by {rfc3339(_utc(revalidate_by))}")
