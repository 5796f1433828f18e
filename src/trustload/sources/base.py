"""What every model source hands the gate, and what the blob cache needs of a source."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from trustload.digests import ModelLayout

if TYPE_CHECKING:
    from trustload.cache import BlobCache, BlobResult
    from trustload.facts import VersionRecord
    from trustload.oci.evidence import ImageEvidence


@dataclass
class Fetched:
    """The facts a source delivers: the layout of verified cache paths, the signature
    evidence (a signature bundle's bytes, or the cosign evidence of an OCI artifact)
    and the attestation envelope; plus counters for the ``download`` check."""

    layout: ModelLayout
    signature: bytes | ImageEvidence | None
    attestation: bytes | None
    fetched: int = 0
    cached: int = 0
    evicted: int = 0
    resumed: int = 0
    unhashed: int = 0  # cached model files left for the engine to hash (quick path)

    def describe(self) -> str:
        text = (
            f"{self.fetched} fetched, {self.cached} re-verified from cache, "
            f"{self.evicted} evicted and fetched again, {self.resumed} resumed"
        )
        if self.unhashed:
            text += f" ({self.unhashed} cached model file(s) hashed by the checks below)"
        return text

    def count(self, results: list[BlobResult]) -> Fetched:
        for res in results:
            self.fetched += res.fetched
            self.cached += not res.fetched
            self.evicted += res.evicted
            self.resumed += bool(res.resumed_from)
            self.unhashed += not res.hashed
        return self


class ModelSource(Protocol):
    """Fetch, by digest, everything a record pins; return the facts (R3.4)."""

    def fetch(
        self, cache: BlobCache, record: VersionRecord, max_bytes: int, *, quick: bool
    ) -> Fetched: ...

    def close(self) -> None: ...


class Headers(Protocol):
    def get(self, name: str, default: str | None = None) -> str | None: ...


class BlobResponse(Protocol):
    """A streamed blob answer, as the cache reads it."""

    status_code: int
    url: Any

    @property
    def headers(self) -> Headers: ...

    def iter_raw(self, buffers: int = 1) -> Iterator[memoryview | bytes]: ...

    def abort(self) -> None: ...


class DownloadLimits(Protocol):
    retries: int
    min_download_rate: int
    slow_grace: float


class Backoff(Protocol):
    def backoff(self, attempt: int) -> None: ...


class BlobClient(Protocol):
    """What :class:`~trustload.cache.BlobCache` needs to download one blob by digest,
    resumably: the Registry client has it, and so does an OCI repository's adapter."""

    @property
    def cfg(self) -> DownloadLimits: ...

    @property
    def transport(self) -> Backoff: ...

    def open_blob(
        self, digest: str, *, offset: int = 0
    ) -> AbstractContextManager[BlobResponse]: ...
