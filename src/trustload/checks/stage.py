"""R1 / R2.3: the version's stage must be allowed in this environment.

Production accepts ``Approved`` only; other (controlled, non-prod) environments
also accept ``Staging``. ``Archived`` is never allowed by default.
"""

from __future__ import annotations

from trustload.decision import CheckResult, ReasonCode

NAME = "stage"
PROD_ENVIRONMENTS = frozenset({"prod", "production"})


def default_allowed_stages(environment: str) -> tuple[str, ...]:
    """``("Approved",)`` in production, ``("Staging", "Approved")`` elsewhere."""
    if environment.strip().lower() in PROD_ENVIRONMENTS:
        return ("Approved",)
    return ("Staging", "Approved")


def check_stage(
    stage: str, environment: str, allowed: tuple[str, ...] | None = None
) -> CheckResult:
    """Pass iff ``stage`` is one of the stages allowed for ``environment``."""
    stages = default_allowed_stages(environment) if allowed is None else allowed
    if stage in stages:
        return CheckResult.passed(NAME, f"stage {stage} allowed in {environment}")
    return CheckResult.failed(
        NAME,
        ReasonCode.STAGE_NOT_ALLOWED,
        f"stage {stage!r} not allowed in environment {environment!r} "
        f"(allowed: {', '.join(stages) or 'none'})",
    )
