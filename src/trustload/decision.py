"""The gate's output: check results carrying reason codes, and the decision record.

These names and values are a public contract (INTERFACE.md, "The decision"): users
script against the JSON, so fields are only ever added, never renamed.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class ReasonCode(enum.StrEnum):
    """Why a check failed. Every code here appears in INTERFACE.md's table."""

    AUTH_FAILED = "AUTH_FAILED"
    REGISTRY_NOT_ALLOWED = "REGISTRY_NOT_ALLOWED"
    TLS_POLICY = "TLS_POLICY"
    REGISTRY_UNAVAILABLE = "REGISTRY_UNAVAILABLE"
    NOT_FOUND = "NOT_FOUND"
    STAGE_NOT_ALLOWED = "STAGE_NOT_ALLOWED"
    REVOKED = "REVOKED"
    QUARANTINED = "QUARANTINED"
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    SIGNATURE_MISSING = "SIGNATURE_MISSING"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    IMAGE_SIGNATURE_INVALID = "IMAGE_SIGNATURE_INVALID"
    ATTESTATION_MISSING = "ATTESTATION_MISSING"
    ATTESTATION_INVALID = "ATTESTATION_INVALID"
    ATTESTATION_SUBJECT_MISMATCH = "ATTESTATION_SUBJECT_MISMATCH"
    ATTESTATION_MISMATCH = "ATTESTATION_MISMATCH"
    ATTESTATION_EXPIRED = "ATTESTATION_EXPIRED"
    REVALIDATION_OVERDUE = "REVALIDATION_OVERDUE"
    POLICY_DIGEST_MISMATCH = "POLICY_DIGEST_MISMATCH"
    TENANT_MISMATCH = "TENANT_MISMATCH"
    PURPOSE_NOT_ALLOWED = "PURPOSE_NOT_ALLOWED"
    DOWNGRADE_BLOCKED = "DOWNGRADE_BLOCKED"
    TRANSPARENCY_UNAVAILABLE = "TRANSPARENCY_UNAVAILABLE"
    POLICY_DENY = "POLICY_DENY"


class Event(enum.StrEnum):
    """R7 event names recorded in the audit log."""

    STARTUP_PERMIT = "startup_permit"
    STARTUP_DENY = "startup_deny"
    ROLLBACK_EXECUTE = "rollback_execute"


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict. ``code`` is None exactly when ``ok`` is True."""

    name: str
    ok: bool
    code: ReasonCode | None = None
    detail: str = ""
    ms: float = 0.0

    def __post_init__(self) -> None:
        if self.ok and self.code is not None:
            raise ValueError("a passing check carries no reason code")
        if not self.ok and self.code is None:
            raise ValueError("a failing check must carry a reason code (fail closed)")

    @classmethod
    def passed(cls, name: str, detail: str = "", ms: float = 0.0) -> CheckResult:
        return cls(name=name, ok=True, code=None, detail=detail, ms=ms)

    @classmethod
    def failed(cls, name: str, code: ReasonCode, detail: str = "", ms: float = 0.0) -> CheckResult:
        return cls(name=name, ok=False, code=code, detail=detail, ms=ms)

    def with_ms(self, ms: float) -> CheckResult:
        return CheckResult(self.name, self.ok, self.code, self.detail, ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "code": None if self.code is None else str(self.code),
            "detail": self.detail,
            "ms": round(self.ms, 3),
        }


def failure(name: str, code: ReasonCode, exc: BaseException) -> CheckResult:
    """The one mapping of an error raised while checking to a denial (fail closed, R1).

    A :class:`~trustload.errors.TrustloadError` keeps its own code and message; any
    other exception becomes the *check's own* code (the caller's ``code``), so a crash
    in the stage check is ``STAGE_NOT_ALLOWED`` on every path, never a pass.
    """
    from trustload.errors import TrustloadError

    if isinstance(exc, TrustloadError):
        return CheckResult.failed(name, exc.code, exc.message)
    return CheckResult.failed(name, code, f"{type(exc).__name__}: {exc}")


def checked(
    name: str, code: ReasonCode, fn: Callable[[], Sequence[CheckResult]]
) -> list[CheckResult]:
    """Run a step yielding one or more results; stamp its latency; fail closed.

    The single fail-closed wrapper every check runs through (engine, gate, serve). An
    empty answer is a denial too: a step that says nothing has not passed.
    """
    start = time.perf_counter()
    try:
        results = list(fn())
        if not results:
            results = [CheckResult.failed(name, code, "the check returned no verdict")]
    except Exception as exc:  # fail closed on anything unexpected
        results = [failure(name, code, exc)]
    if all(r.ms == 0.0 for r in results):
        results[0] = results[0].with_ms((time.perf_counter() - start) * 1000.0)
    return results


def timed(
    name: str, fn: Callable[[], CheckResult], code: ReasonCode = ReasonCode.POLICY_DENY
) -> CheckResult:
    """:func:`checked` for a step with exactly one result (``code`` on a surprise)."""
    return checked(name, code, lambda: [fn()])[0]


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """Yield a function returning elapsed milliseconds since entry."""
    start = time.perf_counter()
    yield lambda: (time.perf_counter() - start) * 1000.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix, second precision or better."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Decision:
    """The gate's decision record (INTERFACE.md). Permit iff every check passed."""

    event: Event
    checks: list[CheckResult]
    requested: str = ""
    model: str | None = None
    version: str | None = None
    artifact_digest: str | None = None
    policy_digest: str | None = None
    git_sha: str | None = None
    container_digest: str | None = None
    dataset_snapshot: str | None = None
    tenant: str | None = None
    domain: str | None = None
    environment: str | None = None
    caller: str | None = None
    latency_ms: float = 0.0
    at: datetime = field(default_factory=utc_now)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def permitted(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def decision(self) -> str:
        return "permit" if self.permitted else "deny"

    @property
    def reasons(self) -> list[ReasonCode]:
        """Every failing code, in check order, without duplicates."""
        seen: list[ReasonCode] = []
        for check in self.checks:
            if check.code is not None and check.code not in seen:
                seen.append(check.code)
        return seen

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "event": str(self.event),
            "decision": self.decision,
            "reasons": [str(r) for r in self.reasons],
            "requested": self.requested,
            "model": self.model,
            "version": self.version,
            "artifact_digest": self.artifact_digest,
            "policy_digest": self.policy_digest,
            "git_sha": self.git_sha,
            "container_digest": self.container_digest,
            "dataset_snapshot": self.dataset_snapshot,
            "tenant": self.tenant,
            "domain": self.domain,
            "environment": self.environment,
            "caller": self.caller,
            "checks": [c.to_json() for c in self.checks],
            "latency_ms": round(self.latency_ms, 3),
            "at": rfc3339(self.at),
        }
        doc.update(self.extra)
        return doc


def deny_event(checks: Sequence[CheckResult]) -> Event:
    return Event.STARTUP_PERMIT if checks and all(c.ok for c in checks) else Event.STARTUP_DENY
