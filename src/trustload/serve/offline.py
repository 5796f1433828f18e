"""Degraded start-up with the Registry down (R5 "offline", freeze protection).

With ``[gate].offline_start = true`` the runtime may start while the Registry is
unreachable, but only from the **last Registry record it saw** for its reference, and
only while that record is younger than ``max_staleness``: an attacker who cuts the
Registry off cannot make a pod start (or keep serving) on an answer older than the
operator's freshness limit. Everything else is unchanged: the gate re-verifies the
cached bytes, the signature, the attestation, the policy digest, stage, revocation,
tenancy and anti-downgrade from that record, exactly as online. Nothing is
downloaded: a blob missing from the cache is a denial.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustload.decision import ReasonCode, rfc3339
from trustload.errors import RegistryError, TrustloadError
from trustload.facts import ModelRef, VersionRecord
from trustload.state import load_last_record

if TYPE_CHECKING:
    from trustload.client.transport import BlobResponse
    from trustload.config import RegistryClientConfig

from trustload.client.api import RecordError, RegistryClient, parse_record


@dataclass(frozen=True)
class CachedStart:
    """The cached Registry record an offline start may use, its age and the audited why."""

    record: VersionRecord
    age: float
    why: str


def cached_start(
    state_dir: Path, ref: ModelRef, environment: str, limit: float, now: datetime
) -> CachedStart | str:
    """The last Registry record saved for ``ref`` if it is younger than ``limit`` seconds
    (``max_staleness``) at ``now``; otherwise why an offline start is refused."""
    try:
        cached = load_last_record(state_dir, ref.name, environment)
    except TrustloadError as exc:
        return f"cached Registry record unusable: {exc.message}"
    if cached is None or cached.get("ref") != ref.ref:
        return f"no cached Registry record for {ref}"
    try:
        fetched_at = datetime.fromisoformat(str(cached["fetched_at"]))
        record = parse_record(cached["record"])
    except (ValueError, KeyError, RecordError) as exc:
        return f"cached Registry record unusable: {exc}"
    if fetched_at.tzinfo is None:  # no age can be computed: refused, like a stale one
        return f"cached Registry record unusable: fetched_at {cached['fetched_at']} has no offset"
    age = (now - fetched_at).total_seconds()
    if age < 0 or age >= limit:
        return (
            f"cached Registry record is {age:.0f}s old; offline start needs < {limit}s "
            "(max_staleness)"
        )
    why = (
        f"Registry unreachable; started from its record of {cached['fetched_at']} "
        f"({age:.0f}s old < max_staleness {limit}s)"
    )
    return CachedStart(record, age, why)


def record_document(record: VersionRecord) -> dict[str, Any]:
    """The Registry's JSON shape of a record (docs/registry-api.md), for re-parsing later."""

    def when(moment: datetime | None) -> str | None:
        return None if moment is None else rfc3339(moment)

    card: dict[str, Any] = dict(record.card.extra)
    card.update(
        {
            "tenant_id": record.card.tenant_id,
            "domain": record.card.domain,
            "purpose": {"allowed": list(record.card.purposes_allowed)},
            "revalidate_by": when(record.card.revalidate_by),
            "format": record.card.format,
        }
    )
    return {
        "name": record.name,
        "version": record.version,
        "stage": record.stage,
        "artifact_digest": record.artifact_digest,
        "artifact_size": record.artifact_size,
        "kind": record.kind,
        "format": record.format,
        "policy_digest": record.policy_digest,
        "git_sha": record.git_sha,
        "container_digest": record.container_digest,
        "dataset_snapshot": record.dataset_snapshot,
        "revoked": record.revoked,
        "revoked_reason": record.revoked_reason,
        "quarantined": record.quarantined,
        "quarantine_reason": record.quarantine_reason,
        "card": card,
        "signature_digest": record.signature_digest,
        "attestation_digest": record.attestation_digest,
        "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in record.files],
        "alias": record.alias,
        "alias_revision": record.alias_revision,
        "change_ticket": record.change_ticket,
        "publisher": record.publisher,
        "created_at": when(record.created_at),
        "served_at": when(getattr(record, "served_at", None)),
    }


class CachedRecordClient(RegistryClient):
    """A Registry client that answers from one cached record and never downloads.

    The identity (token claims, certificate) is still the workload's own; only the
    Registry's answers come from the cache. Any blob the gate would need to fetch is
    ``REGISTRY_UNAVAILABLE``.
    """

    def __init__(self, cfg: RegistryClientConfig, record: VersionRecord) -> None:
        super().__init__(cfg)
        self._record = record

    def _match(self, name: str, ref: str) -> VersionRecord:
        rec = self._record
        if name == rec.name and ref in (rec.version, rec.alias):
            return rec
        raise RegistryError(
            ReasonCode.REGISTRY_UNAVAILABLE, f"offline: no cached Registry record for {name}@{ref}"
        )

    def resolve(self, name: str, ref: str) -> VersionRecord:
        return self._match(name, ref)

    def get_version(self, name: str, version: str) -> VersionRecord:
        return self._match(name, version)

    def list_versions(self, name: str) -> list[VersionRecord]:
        return [self._match(name, self._record.version)]

    @contextmanager
    def open_blob(self, digest: str, *, offset: int = 0) -> Iterator[BlobResponse]:
        raise RegistryError(
            ReasonCode.REGISTRY_UNAVAILABLE, f"offline: blob {digest} is not in the cache"
        )
        yield  # pragma: no cover - a generator, for @contextmanager
