"""One repository of an OCI registry over the distribution API: the ``OciReader`` for
registries, plus the writes cosign-style signing (and model publishing) needs.

Every manifest and blob is hashed while it is read and compared in constant time with
the digest asked for before any byte is handed out; sizes are capped by the descriptor
(or by :mod:`trustload.oci.reader`'s limits) so a hostile registry cannot make us
buffer more than the evidence could be. Uploads are streamed and hashed once.

Codes a caller sees: ``REGISTRY_NOT_ALLOWED`` (host not listed, redirect or realm
elsewhere), ``REGISTRY_UNAVAILABLE`` (unreachable, 5xx, too slow), ``AUTH_FAILED``
(credentials refused, 401 loop), ``TLS_POLICY``, ``NOT_FOUND``, ``DIGEST_MISMATCH``
(bytes that are not what their digest or size says); a signature-evidence document that
is too big or malformed is ``IMAGE_SIGNATURE_INVALID``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urljoin

from trustload.config import OciConfig, load_oci_config
from trustload.decision import ReasonCode
from trustload.errors import FormatError, RegistryError, UsageError
from trustload.identifiers import parse_decimal
from trustload.oci.reader import MAX_MANIFEST_BYTES, MAX_REFERRERS, Descriptor, Manifest
from trustload.oci.reference import DIGEST_RE, RegistryRef
from trustload.oci.transport import OciTransport

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
UPLOAD_CHUNK = 1024 * 1024
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers tag schema: ``sha256:<hex>`` -> ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)


def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or DIGEST_RE.fullmatch(digest) is None:
        raise FormatError(
            ReasonCode.IMAGE_SIGNATURE_INVALID, f"not a sha256 digest: {str(digest)[:80]!r}"
        )
    return digest


def verify_bytes(data: bytes, digest: str, what: str) -> None:
    """Refuse ``data`` unless it hashes to ``digest`` (constant-time compare)."""
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(actual.encode(), digest.encode()):
        raise RegistryError(
            ReasonCode.DIGEST_MISMATCH, f"{what}: bytes hash to {actual}, not {digest}"
        )


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_descriptors(raw: bytes, *, what: str, limit: int = MAX_REFERRERS) -> list[Descriptor]:
    """The ``manifests`` of an image index (referrers answers, the referrers tag)."""
    code = ReasonCode.IMAGE_SIGNATURE_INVALID
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(code, f"{what} is not JSON") from exc
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise FormatError(code, f"{what} is not an image index")
    if len(entries) > limit:
        raise FormatError(code, f"{what} lists {len(entries)} manifests (at most {limit})")
    return [descriptor_from(entry, code=code, what=what) for entry in entries]


def descriptor_from(obj: Any, *, code: ReasonCode, what: str) -> Descriptor:
    """A strict OCI descriptor (digest shape, non-negative size, string annotations)."""
    if not isinstance(obj, dict):
        raise FormatError(code, f"{what}: a descriptor is not an object")
    media, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    annotations = obj.get("annotations") or {}
    artifact = obj.get("artifactType")
    if (
        not isinstance(media, str)
        or not isinstance(digest, str)
        or DIGEST_RE.fullmatch(digest) is None
        or not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
        or not isinstance(annotations, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())
        or (artifact is not None and not isinstance(artifact, str))
    ):
        raise FormatError(code, f"{what}: malformed descriptor")
    return Descriptor(media, digest, size, dict(annotations), artifact)


class RegistryRepository:
    """``HOST/REPO`` on an allowlisted registry; implements :class:`OciReader`."""

    def __init__(self, transport: OciTransport, host: str, repository: str) -> None:
        transport.entry(host)  # REGISTRY_NOT_ALLOWED before anything else
        if _REPOSITORY.fullmatch(repository) is None:  # never a path of our choosing
            raise UsageError(f"{repository[:200]!r} is not an OCI repository name")
        self.transport = transport
        self.host = host
        self.repository = repository
        self.pull = f"repository:{repository}:pull"
        self.push = f"repository:{repository}:pull,push"

    def _path(self, kind: str, reference: str) -> str:
        return f"/v2/{self.repository}/{kind}/{quote(reference, safe=':')}"

    # ----------------------------------------------------------------- reading
    def probe(self) -> None:
        """``GET /v2/``: the registry speaks the distribution API and accepts us."""
        with self.transport.open("GET", self.host, "/v2/", scope=""):
            pass

    def manifest(self, digest: str) -> Manifest:
        _check_digest(digest)
        url = self._path("manifests", digest)
        with self.transport.open(
            "GET", self.host, url, scope=self.pull, headers={"Accept": MANIFEST_ACCEPT}
        ) as response:
            raw = self.transport.read(response, MAX_MANIFEST_BYTES, url)
            media = _media_type(response.headers.get("content-type"))
        verify_bytes(raw, digest, f"manifest {digest}")
        return Manifest(digest, media, raw)

    def head_manifest(self, reference: str) -> Descriptor | None:
        """What a tag or digest names now (``HEAD``), or None when absent."""
        url = self._path("manifests", reference)
        with self.transport.open(
            "HEAD",
            self.host,
            url,
            scope=self.pull,
            headers={"Accept": MANIFEST_ACCEPT},
            tolerate=frozenset({404}),
        ) as response:
            if response.status_code == 404:
                return None
            digest = response.headers.get("docker-content-digest", "")
            size = response.headers.get("content-length", "")
            media = _media_type(response.headers.get("content-type"))
        length = parse_decimal(size)
        if DIGEST_RE.fullmatch(digest) is None or length is None:
            raise RegistryError(
                ReasonCode.REGISTRY_UNAVAILABLE, f"HEAD {url}: no usable digest or length"
            )
        return Descriptor(media, digest, length)

    def tagged_manifest(self, tag: str) -> Manifest | None:
        url = self._path("manifests", tag)
        with self.transport.open(
            "GET",
            self.host,
            url,
            scope=self.pull,
            headers={"Accept": MANIFEST_ACCEPT},
            tolerate=frozenset({404}),
        ) as response:
            if response.status_code == 404:
                return None
            try:
                raw = self.transport.read(response, MAX_MANIFEST_BYTES, url)
            except RegistryError as exc:
                if exc.code is not ReasonCode.DIGEST_MISMATCH:
                    raise
                raise FormatError(
                    ReasonCode.IMAGE_SIGNATURE_INVALID,
                    f"manifest tagged {tag[:80]} is larger than {MAX_MANIFEST_BYTES} bytes",
                ) from exc
            media = _media_type(response.headers.get("content-type"))
        return Manifest("sha256:" + hashlib.sha256(raw).hexdigest(), media, raw)

    def blob(self, descriptor: Descriptor, limit: int) -> bytes:
        if descriptor.size > limit:
            raise FormatError(
                ReasonCode.IMAGE_SIGNATURE_INVALID,
                f"blob {descriptor.digest} claims {descriptor.size} bytes (at most {limit})",
            )
        return b"".join(self.blob_chunks(descriptor))

    def blob_into(self, descriptor: Descriptor, sink: IO[bytes]) -> int:
        """Stream a (large) blob into ``sink``; the caller discards ``sink`` on error."""
        n = 0
        for chunk in self.blob_chunks(descriptor):
            sink.write(chunk)
            n += len(chunk)
        return n

    def blob_chunks(self, descriptor: Descriptor) -> Iterator[bytes]:
        """The blob's bytes, hashed as they arrive, at most ``descriptor.size`` of them;
        the last chunk is yielded only once the whole blob has matched its digest."""
        digest = _check_digest(descriptor.digest)
        url = self._path("blobs", digest)
        hasher = hashlib.sha256()
        held: bytes | None = None
        received = 0
        with self.transport.open("GET", self.host, url, scope=self.pull) as response:
            for chunk in self.transport.chunks(response, descriptor.size, url):
                hasher.update(chunk)
                received += len(chunk)
                if held is not None:
                    yield held
                held = chunk
        actual = "sha256:" + hasher.hexdigest()
        if received != descriptor.size or not hmac.compare_digest(actual, digest):
            raise RegistryError(
                ReasonCode.DIGEST_MISMATCH,
                f"blob {digest}: {received} bytes hashing to {actual} "
                f"(descriptor: {descriptor.size} bytes)",
            )
        if held is not None:
            yield held

    def referrers(self, digest: str) -> list[Descriptor]:
        """OCI 1.1 referrers API; on a registry without it, the ``sha256-<hex>`` tag."""
        _check_digest(digest)
        host = self.transport.entry(self.host).host
        if host in self.transport.no_referrers_api:
            return self._referrers_by_tag(digest)
        url = self._path("referrers", digest)
        with self.transport.open(
            "GET",
            self.host,
            url,
            scope=self.pull,
            headers={"Accept": OCI_INDEX},
            tolerate=frozenset({400, 404, 405}),
        ) as response:
            supported = response.status_code == 200 and _media_type(
                response.headers.get("content-type")
            ) in (OCI_INDEX, "application/json")
            raw = self.transport.read(response, MAX_MANIFEST_BYTES, url) if supported else b""
        if not supported:
            self.transport.no_referrers_api.add(host)  # for this process: go to the tag
            return self._referrers_by_tag(digest)
        return parse_descriptors(raw, what=f"referrers of {digest}")

    def _referrers_by_tag(self, digest: str) -> list[Descriptor]:
        index = self.tagged_manifest(referrers_tag(digest))
        if index is None:
            return []
        return parse_descriptors(index.raw, what=f"referrers tag of {digest}")

    # ----------------------------------------------------------------- writing
    def blob_exists(self, digest: str) -> bool:
        url = self._path("blobs", _check_digest(digest))
        with self.transport.open(
            "HEAD", self.host, url, scope=self.push, tolerate=frozenset({404})
        ) as response:
            return response.status_code != 404

    def _start_upload(self) -> str:
        url = f"/v2/{self.repository}/blobs/uploads/"
        with self.transport.open("POST", self.host, url, scope=self.push) as response:
            location = str(response.headers.get("location", ""))
        if not location:
            raise RegistryError(ReasonCode.REGISTRY_UNAVAILABLE, "upload started without Location")
        return urljoin(self.transport.base_url(self.host) + url, location)

    @staticmethod
    def _with_digest(location: str, digest: str) -> str:
        return location + ("&" if "?" in location else "?") + f"digest={quote(digest, safe='')}"

    def push_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        """Monolithic upload (POST, then PUT with the body and its digest)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.blob_exists(digest):
            location = self._start_upload()
            with self.transport.open(
                "PUT",
                self.host,
                self._with_digest(location, digest),
                scope=self.push,
                headers={"Content-Type": "application/octet-stream"},
                body=data,
            ):
                pass
        return Descriptor(media_type, digest, len(data))

    def push_file(self, path: Path, media_type: str = "application/octet-stream") -> Descriptor:
        """Streamed upload (POST, PATCH with the file as it is read and hashed, PUT
        ``?digest=``): the file is read once; the registry checks the digest too."""
        hasher = hashlib.sha256()
        size = 0

        def stream() -> Iterable[bytes]:
            nonlocal hasher, size
            hasher, size = hashlib.sha256(), 0  # a body re-sent after a 401 starts over
            with path.open("rb") as fh:
                while chunk := fh.read(UPLOAD_CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
                    yield chunk

        location = self._start_upload()
        with self.transport.open(
            "PATCH",
            self.host,
            location,
            scope=self.push,
            headers={"Content-Type": "application/octet-stream"},
            body=stream,
        ) as response:
            location = urljoin(location, response.headers.get("location", "") or location)
        digest = "sha256:" + hasher.hexdigest()
        with self.transport.open(
            "PUT", self.host, self._with_digest(location, digest), scope=self.push, body=b""
        ):
            pass
        return Descriptor(media_type, digest, size)

    def push_manifest(self, raw: bytes, media_type: str, reference: str) -> str:
        """PUT a manifest under a tag (or its digest); returns the digest of ``raw``."""
        if len(raw) > MAX_MANIFEST_BYTES:
            raise FormatError(ReasonCode.DIGEST_MISMATCH, "manifest larger than 4 MiB")
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        with self.transport.open(
            "PUT",
            self.host,
            self._path("manifests", reference),
            scope=self.push,
            headers={"Content-Type": media_type},
            body=raw,
        ) as response:
            stated = response.headers.get("docker-content-digest")
        if stated is not None and not hmac.compare_digest(stated.encode(), digest.encode()):
            raise RegistryError(
                ReasonCode.DIGEST_MISMATCH,
                f"registry stored the manifest as {stated[:80]}, not {digest}",
            )
        return digest


@contextmanager
def open_reader(
    ref: RegistryRef, config: Path | OciConfig | None = None
) -> Iterator[RegistryRepository]:
    """The reader for a registry reference (``config``: a TOML path with
    ``[[oci.registries]]``, or the parsed section; none means no host is allowed)."""
    if isinstance(config, OciConfig):
        cfg = config
    else:
        cfg = load_oci_config(config) if config is not None else OciConfig()
    with OciTransport(cfg) as transport:
        yield RegistryRepository(transport, ref.host, ref.repository)
