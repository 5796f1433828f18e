"""R2.2 / R5 "pin by digest": the bytes about to load hash to the pinned digest.

The measured artifact digest (:mod:`trustload.digests`, one definition for files and
directories) must equal the Registry record's ``artifact_digest``; compared in
constant time.
"""

from __future__ import annotations

from trustload.decision import CheckResult, ReasonCode
from trustload.digests import digests_equal

NAME = "digest"


def check_digest(measured: str | None, pinned: str) -> CheckResult:
    """Pass iff ``measured`` equals ``pinned`` (constant time); None means unmeasured."""
    if measured is None:
        return CheckResult.failed(
            NAME, ReasonCode.DIGEST_MISMATCH, "artifact could not be measured"
        )
    if not measured.startswith("sha256:") or not digests_equal(measured, pinned):
        return CheckResult.failed(
            NAME, ReasonCode.DIGEST_MISMATCH, f"measured {measured}, Registry pins {pinned}"
        )
    return CheckResult.passed(NAME, f"artifact digest {measured}")
