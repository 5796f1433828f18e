"""R1.3 / R2.7: ``policy_digest(runtime) == policy_digest(registry)`` (constant time).

``runtime`` is the digest of the policy bundle the gate actually compiled; a
caller-supplied runtime digest that disagrees with it is a mismatch too.
"""

from __future__ import annotations

from trustload.decision import CheckResult, ReasonCode
from trustload.digests import digests_equal

NAME = "policy_digest"


def check_policy_digest(
    runtime: str, registry: str, claimed_runtime: str | None = None
) -> CheckResult:
    """Pass iff the loaded bundle's digest equals the Registry's (and any claimed one)."""
    if claimed_runtime is not None and not digests_equal(claimed_runtime, runtime):
        return CheckResult.failed(
            NAME,
            ReasonCode.POLICY_DIGEST_MISMATCH,
            f"runtime policy digest {claimed_runtime} is not the loaded bundle's {runtime}",
        )
    if not registry or not digests_equal(runtime, registry):
        return CheckResult.failed(
            NAME,
            ReasonCode.POLICY_DIGEST_MISMATCH,
            f"runtime policy {runtime} != Registry policy {registry or '(none)'}",
        )
    return CheckResult.passed(NAME, f"policy {runtime}")
