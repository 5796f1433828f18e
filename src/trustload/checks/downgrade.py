"""R5 anti-downgrade: never accept a version older than the one this runtime trusts,
unless the alias was moved explicitly (and, when required, with a change ticket).

Version order (:func:`compare_versions`):

* both versions are decimal integers (``"3"``, ``"12"``): compared numerically;
* both are dotted decimals (``"1.2.10"``): compared part by part numerically, a
  missing part counting as 0 (``"1.2" == "1.2.0"``);
* anything else is *incomparable* and treated like "older": it is accepted only
  through an explicit alias move, so an unknown ordering never opens a rollback.

An older (or incomparable) version passes only when the record was reached through
the same alias the trusted state was, and the record's ``alias_revision`` is
greater than the trusted one (the alias was moved after we trusted it); with
``require_change_ticket`` the record must also carry a ``change_ticket``. The same
version with a different artifact digest is refused too (a substituted artifact).
"""

from __future__ import annotations

import re

from trustload.decision import CheckResult, ReasonCode
from trustload.digests import digests_equal
from trustload.facts import TrustedState, VersionRecord

NAME = "downgrade"
MAX_VERSION_CHARS = 100
_DOTTED = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def compare_versions(a: str, b: str) -> int | None:
    """-1, 0 or 1 when ``a`` is older, equal or newer than ``b``; None if incomparable."""
    if a == b:
        return 0
    if len(a) > MAX_VERSION_CHARS or len(b) > MAX_VERSION_CHARS:
        return None
    if not (_DOTTED.fullmatch(a) and _DOTTED.fullmatch(b)):
        return None
    pa = [int(x) for x in a.split(".")]
    pb = [int(x) for x in b.split(".")]
    width = max(len(pa), len(pb))
    pa += [0] * (width - len(pa))
    pb += [0] * (width - len(pb))
    return (pa > pb) - (pa < pb)


def check_downgrade(
    record: VersionRecord, state: TrustedState | None, *, require_change_ticket: bool = False
) -> CheckResult:
    """Pass unless ``record`` would roll this runtime back without an explicit alias move."""
    if state is None:
        return CheckResult.passed(NAME, "no trusted version yet")
    if state.model != record.name:
        return CheckResult.failed(
            NAME, ReasonCode.DOWNGRADE_BLOCKED, f"trusted state is for model {state.model!r}"
        )
    order = compare_versions(record.version, state.version)
    if order == 0:
        if not digests_equal(record.artifact_digest, state.artifact_digest):
            return CheckResult.failed(
                NAME,
                ReasonCode.DOWNGRADE_BLOCKED,
                f"version {record.version} was trusted as {state.artifact_digest}, "
                f"now claims {record.artifact_digest}",
            )
        return CheckResult.passed(NAME, f"version {record.version} is the trusted one")
    if order == 1:
        return CheckResult.passed(NAME, f"version {record.version} is newer than {state.version}")
    relation = "older than" if order == -1 else "not comparable with"
    moved = (
        record.alias is not None
        and record.alias == state.alias
        and record.alias_revision is not None
        and state.alias_revision is not None
        and record.alias_revision > state.alias_revision
    )
    if not moved:
        return CheckResult.failed(
            NAME,
            ReasonCode.DOWNGRADE_BLOCKED,
            f"version {record.version} is {relation} trusted version {state.version} "
            f"and alias {state.alias!r} was not moved explicitly "
            f"(revision {record.alias_revision} vs trusted {state.alias_revision})",
        )
    if require_change_ticket and not (record.change_ticket or "").strip():
        return CheckResult.failed(
            NAME,
            ReasonCode.DOWNGRADE_BLOCKED,
            f"version {record.version} is {relation} trusted version {state.version}: "
            "the alias move carries no change ticket",
        )
    ticket = f" (change ticket {record.change_ticket})" if record.change_ticket else ""
    return CheckResult.passed(
        NAME,
        f"explicit alias move to {record.version}, revision {record.alias_revision}{ticket}",
    )
