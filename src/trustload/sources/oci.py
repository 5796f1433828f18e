"""An OCI registry as a model source (``artifact_uri = "oci://HOST/REPO@sha256:..."``).

The Registry record pins the manifest digest; everything else follows from it:

* the manifest is fetched by digest and hashed before it is parsed (bounded);
* its layers (ModelPack, ORAS or KitOps raw layers, :mod:`trustload.oci.modelpack`)
  must be exactly the record's files: same paths, digests and sizes;
* every layer is downloaded by digest into the shared content-addressed cache
  (:class:`~trustload.cache.BlobCache`, the same one the Registry path uses: one blob
  is one file whoever served it), in parallel, hashed while it streams, its size
  bounded by its descriptor and by ``registry.max_download_bytes``, resumed with
  ``Range`` after a broken connection;
* the cosign signatures and attestations of the manifest digest are gathered as facts
  for the engine, which verifies them with ``[gate]`` trust.

Only hosts in ``[[oci.registries]]`` are contacted (else REGISTRY_NOT_ALLOWED); an
unreachable registry is REGISTRY_UNAVAILABLE, exactly as the Registry being down.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from trustload.decision import ReasonCode
from trustload.digests import ModelLayout, digests_equal
from trustload.errors import TrustloadError
from trustload.sources.base import Fetched, Headers
from trustload.sources.registry import check_total

if TYPE_CHECKING:
    import httpx

    from trustload.cache import BlobCache, BlobResult
    from trustload.config import OciConfig, OciRegistryConfig
    from trustload.facts import VersionRecord
    from trustload.oci.evidence import ImageEvidence
    from trustload.oci.registry import RegistryRepository
    from trustload.oci.transport import OciTransport

PARALLEL_LAYERS = 4
RAW_CHUNK = 1024 * 1024
SLSA_PREDICATES = ("https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2")


class _Response:
    """An httpx streamed response, seen as the cache's BlobResponse."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.url = str(response.url)

    @property
    def headers(self) -> Headers:
        return self._response.headers

    def iter_raw(self, buffers: int = 1) -> Iterator[bytes]:
        """Fresh ``bytes`` per chunk, so any number of them may still be hashed."""
        yield from self._response.iter_raw(RAW_CHUNK)

    def abort(self) -> None:
        """Called from the cache's slow-retrieval watchdog thread: close the stream."""
        with suppress(Exception):
            self._response.close()


class OciBlobClient:
    """One repository's ``/v2/<repo>/blobs/<digest>`` as the cache's BlobClient."""

    def __init__(self, repo: RegistryRepository) -> None:
        self.repo = repo
        self._entry = repo.transport.entry(repo.host)

    @property
    def cfg(self) -> OciRegistryConfig:
        return self._entry

    @property
    def transport(self) -> OciTransport:
        return self.repo.transport

    @contextmanager
    def open_blob(self, digest: str, *, offset: int = 0) -> Iterator[_Response]:
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        path = f"/v2/{self.repo.repository}/blobs/{digest}"
        with self.repo.transport.open(
            "GET", self.repo.host, path, scope=self.repo.pull, headers=headers
        ) as response:
            yield _Response(response)


def _bundle_predicate(bundle: bytes) -> str | None:
    """The predicate type a Sigstore bundle's DSSE statement *claims* (unverified: used
    to choose which bundle the engine verifies, never to decide)."""
    try:
        envelope = json.loads(bundle)["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"], validate=True))
        predicate = statement["predicateType"]
    except (ValueError, KeyError, TypeError):
        return None
    return predicate if isinstance(predicate, str) else None


def pick_attestation(evidence: ImageEvidence) -> bytes | None:
    """The attestation the engine checks: the first SLSA provenance ``.att`` layer by its
    (unsigned) annotation, else the first readable ``.att`` layer, else the first Sigstore
    bundle referrer of this digest claiming SLSA provenance (cosign 3, ``actions/attest``).
    Only the choice is made here: the engine verifies the envelope, its signer, the
    statement's type and its subject."""
    readable = [ev for ev in evidence.attestations if ev.blob is not None]
    for ev in readable:
        if ev.layer.descriptor.annotations.get("predicateType") in SLSA_PREDICATES:
            return ev.blob
    if readable:
        return readable[0].blob
    for ref in evidence.referrers:
        claims = _bundle_predicate(ref.bundle) if ref.bundle is not None else None
        if ref.subject == evidence.digest and claims in SLSA_PREDICATES:
            return ref.bundle
    return None


def candidates(transport: OciTransport, host: str, repository: str) -> list[RegistryRepository]:
    """Where to fetch ``host/repository`` from: every allowlisted registry that is a
    ``mirror_of`` that host, then the host itself when it is allowlisted. None at all is
    REGISTRY_NOT_ALLOWED: only listed hosts are ever contacted."""
    from trustload.oci.registry import RegistryRepository
    from trustload.oci.transport import normalise_host

    origin = normalise_host(host)
    out = [
        RegistryRepository(transport, entry.host, repository)
        for entry in transport.entries.values()
        if origin in {normalise_host(m) for m in entry.mirror_of}
    ]
    if origin in transport.entries or not out:
        out.append(RegistryRepository(transport, host, repository))  # NOT_ALLOWED if absent
    return out


FALL_THROUGH = frozenset({ReasonCode.REGISTRY_UNAVAILABLE, ReasonCode.NOT_FOUND})
"""A mirror that is down or lacks the artifact sends the gate to the next candidate; a
mirror serving wrong bytes (DIGEST_MISMATCH) denies, as the origin would."""


class OciSource:
    """Fetch a model artifact from an allowlisted OCI registry (see module docstring)."""

    def __init__(self, uri: str, oci: OciConfig) -> None:
        from trustload.errors import RegistryError, UsageError
        from trustload.oci.reference import parse_artifact_uri
        from trustload.oci.transport import OciTransport

        try:
            self.ref = parse_artifact_uri(uri)
        except UsageError as exc:
            raise RegistryError(ReasonCode.REGISTRY_UNAVAILABLE, str(exc)) from exc
        self._transport = OciTransport(oci)
        try:
            self.repos = candidates(self._transport, self.ref.host, self.ref.repository)
        except BaseException:
            self._transport.close()
            raise

    def close(self) -> None:
        self._transport.close()

    def fetch(
        self, cache: BlobCache, record: VersionRecord, max_bytes: int, *, quick: bool = False
    ) -> Fetched:
        check_total(record, max_bytes)
        if not digests_equal(self.ref.digest, record.artifact_digest):
            raise TrustloadError(
                ReasonCode.DIGEST_MISMATCH, "artifact_uri names another digest than the record"
            )
        for i, repo in enumerate(self.repos):
            try:
                return self._fetch_from(repo, cache, record, max_bytes, quick)
            except TrustloadError as exc:
                if exc.code not in FALL_THROUGH or i + 1 == len(self.repos):
                    raise
        raise AssertionError("unreachable: candidates() is never empty")

    def _fetch_from(
        self,
        repo: RegistryRepository,
        cache: BlobCache,
        record: VersionRecord,
        max_bytes: int,
        quick: bool,
    ) -> Fetched:
        from trustload.cache import facts_of
        from trustload.oci.evidence import collect_model_evidence
        from trustload.oci.modelpack import parse_model_manifest

        manifest = repo.manifest(self.ref.digest)  # hashed to the pinned digest
        parsed = parse_model_manifest(manifest.raw)
        if parsed.entries() != record.files:
            raise TrustloadError(
                ReasonCode.DIGEST_MISMATCH, "the manifest's layers are not the record's files"
            )
        blobs = OciBlobClient(repo)

        def one(item: tuple[str, Any]) -> BlobResult:
            path, layer = item
            return cache.ensure(
                blobs, layer.digest, layer.size, limit=max_bytes, label=path, reverify=not quick
            )

        workers = max(1, min(PARALLEL_LAYERS, len(parsed.files)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="oci-layer") as pool:
            results = list(pool.map(one, parsed.files))
        # One pass: a layer downloaded (or re-verified) now was hashed while it streamed
        # and matched its descriptor; the checks reuse those digests (streamhash facts).
        layout = ModelLayout(
            "directory",
            record.name,
            tuple((path, res.path) for (path, _l), res in zip(parsed.files, results, strict=True)),
            digest=self.ref.digest,
            oci_manifest=manifest.raw,
            known=facts_of(results),
        )
        evidence = collect_model_evidence(repo, self.ref.digest)
        return Fetched(layout, evidence, pick_attestation(evidence)).count(results)
