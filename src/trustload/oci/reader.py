"""The one interface every OCI source implements.

The cosign verifier reads signatures, attestations and referrers through this protocol
only. Implementations (``oci.layout`` for ``cosign save`` directories, ``oci.registry``
for the distribution API over HTTPS) must hand out bytes that already hash to the digest
asked for (a ``DIGEST_MISMATCH`` ``TrustloadError`` otherwise) and must bound every size
by the descriptor or by the limits below, so that nothing downstream parses unverified or
unbounded input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""What the distribution spec lets a registry refuse above; also cosign's own limit."""
MAX_SIGNATURE_LAYER_BYTES = 1 * 1024 * 1024
"""A simple-signing payload or Sigstore bundle is a few KiB; more is hostile."""
MAX_ATTESTATION_LAYER_BYTES = 16 * 1024 * 1024
MAX_LAYERS_IN_SIGNATURE_MANIFEST = 1000
MAX_REFERRERS = 1000


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (media type, digest, size, annotations, artifactType)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes, verified against ``digest`` before anyone parses them."""

    digest: str
    media_type: str
    raw: bytes


class OciReader(Protocol):
    """Read-only, digest-checked access to one repository of an OCI source."""

    def manifest(self, digest: str) -> Manifest:
        """The manifest stored under ``digest``; raises NOT_FOUND / DIGEST_MISMATCH / ..."""
        ...

    def tagged_manifest(self, tag: str) -> Manifest | None:
        """The manifest a tag (``sha256-<hex>.sig`` / ``.att``) names now, or None if absent.

        Its digest is computed from the bytes received, never taken from a header.
        """
        ...

    def blob(self, descriptor: Descriptor, limit: int) -> bytes:
        """A small blob (signature layer, config), refused above ``min(size, limit)``."""
        ...

    def referrers(self, digest: str) -> list[Descriptor]:
        """Descriptors of manifests whose ``subject`` claims ``digest`` (OCI 1.1 referrers
        API, or the ``sha256-<hex>`` referrers tag schema as fallback); empty if none.

        The caller must still fetch each manifest and check its ``subject``: an index can lie.
        """
        ...
