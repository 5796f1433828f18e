"""R1 / R2.3: the version's stage must be allowed in this environment.

Environment names map to stages by a closed table (INTERFACE.md, "Rules that close
known attacks"): ``prod`` / ``production`` accept ``Approved`` only; ``staging``,
``dev``, ``development``, ``test`` and ``qa`` also accept ``Staging``. Any other name
(``prd``, ``production-eu``, a typo) has no default: it needs an explicit
``[gate] allowed_stages``, otherwise the configuration is refused. A name that merely
*looks* non-production must never open the gate to ``Staging``.
"""

from __future__ import annotations

from collections.abc import Sequence

from trustload.decision import CheckResult, ReasonCode

NAME = "stage"
STAGES = ("Staging", "Approved", "Archived")
PROD_ENVIRONMENTS = frozenset({"prod", "production"})
NONPROD_ENVIRONMENTS = frozenset({"staging", "dev", "development", "test", "qa"})
_DEFAULTS: dict[str, tuple[str, ...]] = {
    **{name: ("Approved",) for name in PROD_ENVIRONMENTS},
    **{name: ("Staging", "Approved") for name in NONPROD_ENVIRONMENTS},
}


class UnknownEnvironment(ValueError):
    """An environment name with no default stages and no explicit ``allowed_stages``."""


def default_allowed_stages(environment: str) -> tuple[str, ...]:
    """The stages a known environment name admits; raises :class:`UnknownEnvironment`."""
    stages = _DEFAULTS.get(environment.lower())
    if stages is None:
        known = ", ".join(sorted(_DEFAULTS))
        raise UnknownEnvironment(
            f"environment {environment!r} is not a known name ({known}); "
            "set [gate] allowed_stages explicitly"
        )
    return stages


def allowed_stages_for(environment: str, explicit: Sequence[str] | None = None) -> tuple[str, ...]:
    """``explicit`` when given (each a real stage name), else the environment's default."""
    if explicit is None:
        return default_allowed_stages(environment)
    unknown = [s for s in explicit if s not in STAGES]
    if unknown:
        raise UnknownEnvironment(
            f"allowed_stages names unknown stage(s) {unknown} (stages: {', '.join(STAGES)})"
        )
    return tuple(explicit)


def check_stage(
    stage: str, environment: str, allowed: tuple[str, ...] | None = None
) -> CheckResult:
    """Pass iff ``stage`` is one of the stages allowed for ``environment``.

    An unknown environment without ``allowed`` admits nothing (config loading refuses
    it earlier; this keeps a config built around that check closed too).
    """
    try:
        stages = default_allowed_stages(environment) if allowed is None else allowed
    except UnknownEnvironment as exc:
        return CheckResult.failed(NAME, ReasonCode.STAGE_NOT_ALLOWED, str(exc))
    if stage in stages:
        return CheckResult.passed(NAME, f"stage {stage} allowed in {environment}")
    return CheckResult.failed(
        NAME,
        ReasonCode.STAGE_NOT_ALLOWED,
        f"stage {stage!r} not allowed in environment {environment!r} "
        f"(allowed: {', '.join(stages) or 'none'})",
    )
