"""R1.4 / R2.4: the version is neither revoked nor quarantined.

Two separate results so that a version both revoked and quarantined reports both
codes (the engine lists every failing code).
"""

from __future__ import annotations

from trustload.decision import CheckResult, ReasonCode


def check_revoked(revoked: bool, reason: str | None = None) -> CheckResult:
    """Fail with REVOKED unless ``revoked`` is exactly False (fail closed on odd values)."""
    if revoked is False:
        return CheckResult.passed("revoked", "not revoked")
    why = f": {reason}" if reason else ""
    return CheckResult.failed("revoked", ReasonCode.REVOKED, f"version is revoked{why}")


def check_quarantined(quarantined: bool, reason: str | None = None) -> CheckResult:
    """Fail with QUARANTINED unless ``quarantined`` is exactly False."""
    if quarantined is False:
        return CheckResult.passed("quarantined", "not quarantined")
    why = f": {reason}" if reason else ""
    return CheckResult.failed("quarantined", ReasonCode.QUARANTINED, f"version is quarantined{why}")
