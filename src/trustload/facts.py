"""Typed facts the gate decides on. Plain frozen data: no I/O, no behaviour.

Adapters (Registry client, CLI, cache) build these; the checks and the engine read
them. The Registry's JSON record maps one-to-one onto :class:`VersionRecord`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustload.digests import FileEntry

STAGES = ("Staging", "Approved", "Archived")


@dataclass(frozen=True)
class ModelRef:
    """``name@ref`` where ref is an alias (``production``) or a version (``3``)."""

    name: str
    ref: str

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        from trustload.errors import UsageError
        from trustload.identifiers import Kind, is_valid

        name, sep, ref = text.partition("@")
        if not sep or not is_valid(Kind.NAME, name) or not is_valid(Kind.NAME, ref):
            raise UsageError(
                f"expected NAME@ALIAS or NAME@VERSION ({Kind.NAME.value} each), got {text!r}"
            )
        return cls(name, ref)

    def __str__(self) -> str:
        return f"{self.name}@{self.ref}"


@dataclass(frozen=True)
class ModelCard:
    """The governance card (INTERFACE.md "Model card")."""

    tenant_id: str
    domain: str
    purposes_allowed: tuple[str, ...]
    revalidate_by: datetime | None
    format: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionRecord:
    """What the Registry says about one immutable version (plus the alias used)."""

    name: str
    version: str
    stage: str
    artifact_digest: str
    artifact_size: int
    kind: str  # "file" | "directory"
    format: str | None
    policy_digest: str
    git_sha: str
    container_digest: str
    dataset_snapshot: str
    revoked: bool
    quarantined: bool
    card: ModelCard
    signature_digest: str | None = None
    attestation_digest: str | None = None
    revoked_reason: str | None = None
    quarantine_reason: str | None = None
    alias: str | None = None
    alias_revision: int | None = None
    change_ticket: str | None = None
    publisher: str | None = None
    created_at: datetime | None = None
    files: tuple[FileEntry, ...] = ()  # every file's path, sha256, size (registry-api.md)
    served_at: datetime | None = None  # when the Registry produced this answer (freshness)
    # Where the bytes are, when not in the Registry's own blob store:
    # ``oci://HOST/REPO@sha256:<manifest digest>`` (then artifact_digest is that digest).
    artifact_uri: str | None = None


@dataclass(frozen=True)
class Requester:
    """Who asks: from the workload's token (and client certificate)."""

    subject: str
    tenant_id: str
    domain: str | None
    purposes: tuple[str, ...]
    caller: str


@dataclass(frozen=True)
class TrustAnchors:
    """Whom the gate trusts to sign models and attestations.

    Any one anchor that verifies suffices; none configured means nothing verifies.
    """

    public_keys: tuple[bytes, ...] = ()  # PEM SPKI
    certificate_identity: str | None = None
    certificate_oidc_issuer: str | None = None
    trusted_root: Path | None = None  # Sigstore TrustedRoot JSON
    ca_certs: tuple[bytes, ...] = ()  # PEM, for private-CA certificate chains
    require_tlog: bool = True  # keyless: an inclusion proof must be in the bundle
    ca_intermediates: tuple[bytes, ...] = ()  # PEM, untrusted path-building help
    rekor_keys: tuple[bytes, ...] = ()  # PEM; any given makes a Rekor SET required (cosign)
    require_key_tlog: bool = False  # key mode: a log entry must be present and verify
    # Keys that sign attestations only ([gate] attestation_keys). When set, attestations
    # verify with these and model signatures with ``public_keys`` only, so a signature
    # made in one role never counts in the other.
    attestation_keys: tuple[bytes, ...] = ()

    def for_attestations(self) -> TrustAnchors:
        """The anchors an attestation is verified against (its own keys when configured)."""
        if not self.attestation_keys:
            return self
        return replace(self, public_keys=self.attestation_keys, attestation_keys=())


@dataclass(frozen=True)
class Expectations:
    """Values the attestation must agree with (from the Registry or the CLI)."""

    git_sha: str | None = None
    container_digest: str | None = None
    dataset_snapshot: str | None = None


@dataclass(frozen=True)
class TrustedState:
    """The runtime's anti-downgrade memory for one model and environment (R5)."""

    model: str
    environment: str
    version: str
    alias: str | None
    alias_revision: int | None
    artifact_digest: str
