"""The OCI blob backend: the Registry keeps blob bytes in an OCI registry's repository
(``[server] blob_store = "oci://HOST/REPO"``), so replicas share no disk.

* Uploads go through the distribution API as they arrive: ``POST`` an upload session,
  ``PATCH`` it in bounded chunks (``Content-Range``) while hashing, and only once the
  whole body matched its declared length and digest (constant-time compare) the final
  ``PUT ?digest=`` that makes the blob exist (the OCI registry checks the digest too).
  Anything else cancels the session (``DELETE``): never a partial blob under a digest.
  At most :data:`UPLOAD_CHUNK` bytes of a body are in memory at once.
* Downloads stream from the OCI registry, one byte range forwarded as asked (206),
  exactly like the filesystem backend serves its files: the gate is the verifier and
  hashes every byte it admits, so tampered storage is its ``DIGEST_MISMATCH`` (not a
  Registry outage). What the Registry itself reads (a directory manifest at publish)
  it verifies before use.
* Credentials, CA, timeouts and rate floors come from ``[[oci.registries]]`` through
  :class:`~trustload.oci.transport.OciTransport`; a registry that cannot answer is a
  503 ``UNAVAILABLE``, never a 500.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import re
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urljoin

import anyio
from anyio import to_thread
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from trustload.config import OciConfig
from trustload.decision import ReasonCode
from trustload.digests import digests_equal
from trustload.errors import RegistryError, UsageError
from trustload.identifiers import parse_decimal
from trustload.oci.registry import RegistryRepository
from trustload.oci.transport import OciTransport
from trustload.registry.blobs import IDLE_TIMEOUT, Stored, _with_idle_timeout, check_hex
from trustload.registry.errors import ApiError, bad_request

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("trustload.registry")

SCHEME = "oci://"
UPLOAD_CHUNK = 8 * 1024 * 1024
"""Bytes buffered per PATCH: the memory bound of one upload."""
SEND_BATCH = 1024 * 1024
"""Downloads are re-chunked to 1 MiB: fewer thread hops per byte served."""
TRANSPORTS = 16
"""Independent connection pools: OciTransport keeps at most 8 connections each, and a
fleet starting together has each replica stream ~100 blobs at once."""
STREAM_THREADS = TRANSPORTS * 8
"""Worker threads that move download bytes, apart from the threads that run routes.
With one shared pool, route handlers waiting for an OCI connection could take every
thread while the streams holding those connections wait for one to make progress."""
_RANGE = re.compile(r"bytes=([0-9]{0,20})-([0-9]{0,20})")


@dataclass(frozen=True)
class OciTarget:
    host: str
    repository: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.host}/{self.repository}"


def parse_blob_store(value: str) -> OciTarget:
    """``oci://HOST[:PORT]/REPO`` (no tag, no digest: blobs are named by digest)."""
    if not value.startswith(SCHEME):
        raise UsageError(f"server.blob_store must be oci://HOST/REPO, got {value[:200]!r}")
    host, sep, repository = value[len(SCHEME) :].partition("/")
    if not sep or not host or not repository or "@" in repository or ":" in repository:
        raise UsageError(f"server.blob_store must be oci://HOST/REPO, got {value[:200]!r}")
    return OciTarget(host.lower(), repository)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one inclusive range ``header`` asks for, clipped to ``size``; None for the
    whole blob (no header, or several ranges, served whole like the file backend).
    ``header`` was validated by ``app.check_range`` already."""
    if header is None or "," in header:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None:
        raise bad_request(f"unsupported Range header {header[:80]!r}")
    first, last = m.group(1), m.group(2)
    if not first:
        return max(0, size - int(last)), size - 1
    return int(first), min(int(last), size - 1) if last else size - 1


def unavailable(target: OciTarget, exc: RegistryError) -> ApiError:
    return ApiError(
        503, "UNAVAILABLE", f"blob store {target} cannot answer ({exc.code.value}): {exc}"[:600]
    )


class OciBlobStore:
    """:class:`~trustload.registry.blobs.BlobBackend` over one OCI repository."""

    def __init__(self, target: OciTarget, cfg: OciConfig) -> None:
        self.target = target
        try:
            self._repos = [
                RegistryRepository(OciTransport(cfg), target.host, target.repository)
                for _ in range(TRANSPORTS)
            ]
        except RegistryError as exc:  # host not in [[oci.registries]]
            raise UsageError(f"server.blob_store {target}: {exc}") from exc
        self._turn = itertools.count()
        self._stream_threads: anyio.CapacityLimiter | None = None  # made in the loop

    def _repo(self) -> RegistryRepository:
        return self._repos[next(self._turn) % len(self._repos)]

    def _blob_url(self, hexdigest: str) -> str:
        return f"/v2/{self.target.repository}/blobs/sha256:{check_hex(hexdigest)}"

    def close(self) -> None:
        for repo in self._repos:
            repo.transport.close()

    # ------------------------------------------------------------------ reading
    def size(self, hexdigest: str) -> int | None:
        repo = self._repo()
        try:
            with repo.transport.open(
                "HEAD",
                repo.host,
                self._blob_url(hexdigest),
                scope=repo.pull,
                tolerate=frozenset({404}),
            ) as response:
                if response.status_code == 404:
                    return None
                length = parse_decimal(response.headers.get("content-length", ""))
        except RegistryError as exc:
            raise unavailable(self.target, exc) from exc
        if length is None:
            raise ApiError(503, "UNAVAILABLE", f"blob store {self.target}: HEAD without length")
        return length

    def read_small(self, hexdigest: str, limit: int) -> bytes:
        size = self.size(hexdigest)
        if size is None:
            raise ApiError(503, "UNAVAILABLE", f"blob store {self.target} lost sha256:{hexdigest}")
        if size > limit:
            raise bad_request(f"blob sha256:{hexdigest} is larger than {limit} bytes", 413)
        data = b"".join(self._chunks(hexdigest, None, size))
        if not digests_equal(hashlib.sha256(data).hexdigest(), hexdigest):
            raise ApiError(
                503, "UNAVAILABLE", f"blob store {self.target}: sha256:{hexdigest} is corrupt"
            )
        return data

    def serve(self, hexdigest: str, size: int, range_header: str | None, head: bool) -> Response:
        wanted = byte_range(range_header, size)
        first, last = wanted if wanted is not None else (0, size - 1)
        headers = {
            "etag": f'"sha256:{hexdigest}"',
            "accept-ranges": "bytes",
            "content-length": str(last - first + 1),
        }
        status = 200
        if wanted is not None:
            status = 206
            headers["content-range"] = f"bytes {first}-{last}/{size}"
        if head or size == 0:
            return Response(b"", status, headers, media_type="application/octet-stream")
        # Opened here, before any header is sent: an OCI registry that is down is a
        # clean 503, not a 200 with a broken body.
        stack = contextlib.ExitStack()
        chunks = stack.enter_context(contextlib.closing(self._chunks(hexdigest, wanted, size)))
        try:
            head_chunk = next(chunks, b"")
        except BaseException:
            stack.close()
            raise

        async def body() -> AsyncIterator[bytes]:
            if self._stream_threads is None:
                self._stream_threads = anyio.CapacityLimiter(STREAM_THREADS)
            try:
                chunk: bytes | None = head_chunk
                while chunk is not None:
                    if chunk:
                        yield chunk
                    chunk = await to_thread.run_sync(
                        next, chunks, None, limiter=self._stream_threads
                    )
            except ApiError as exc:  # headers are out: all we can do is end the body short
                log.warning("blob sha256:%s cut short: %s", hexdigest, exc.message)
                raise
            finally:
                stack.close()

        return StreamingResponse(
            body(),
            status,
            headers,
            media_type="application/octet-stream",
            background=BackgroundTask(stack.close),  # a client gone before the body
        )

    def _chunks(
        self, hexdigest: str, wanted: tuple[int, int] | None, size: int
    ) -> Generator[bytes, None, None]:
        """The stored bytes (all, or the ``wanted`` range), re-batched, at most as many
        as asked for. Raises ApiError (503) on any registry failure or short answer."""
        repo = self._repo()
        url = self._blob_url(hexdigest)
        headers = {} if wanted is None else {"Range": f"bytes={wanted[0]}-{wanted[1]}"}
        expected = size if wanted is None else wanted[1] - wanted[0] + 1
        received = 0
        try:
            with repo.transport.open(
                "GET", repo.host, url, scope=repo.pull, headers=headers
            ) as response:
                _check_answer(response, wanted, size)
                batch = bytearray()
                for chunk in repo.transport.chunks(response, expected, url):
                    received += len(chunk)
                    batch += chunk
                    if len(batch) >= SEND_BATCH:
                        yield bytes(batch)
                        batch.clear()
        except RegistryError as exc:
            raise unavailable(self.target, exc) from exc
        if received != expected:
            raise ApiError(503, "UNAVAILABLE", f"blob store {self.target}: short answer")
        if batch:
            yield bytes(batch)

    # ------------------------------------------------------------------ writing
    async def ingest(
        self,
        hexdigest: str,
        chunks: AsyncIterator[bytes],
        declared: int,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> Stored:
        check_hex(hexdigest)
        upload = _Upload(self._repo(), self.target)
        await to_thread.run_sync(upload.start)
        try:
            pending = bytearray()
            received = 0
            async for chunk in _with_idle_timeout(chunks, idle_timeout):
                received += len(chunk)
                if received > declared:
                    raise bad_request("body longer than its Content-Length")
                pending += chunk
                if len(pending) >= UPLOAD_CHUNK:
                    await to_thread.run_sync(upload.patch, bytes(pending))
                    pending.clear()
            if received != declared:
                raise bad_request(f"body truncated: {received} of {declared} bytes")
            last = bytes(pending)
            actual = await to_thread.run_sync(upload.digest_with, last)
            if not digests_equal(actual, hexdigest):
                raise bad_request(
                    f"digest mismatch: body hashes to sha256:{actual}, not sha256:{hexdigest}"
                )
            await to_thread.run_sync(upload.commit, last, hexdigest)
            return Stored(hexdigest, declared, created=True)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await to_thread.run_sync(upload.cancel)
            raise


def _check_answer(response: httpx.Response, wanted: tuple[int, int] | None, size: int) -> None:
    """A range must come back as exactly that range (a registry ignoring Range would
    send the whole blob where a part was asked for)."""
    if wanted is None:
        return
    expected = f"bytes {wanted[0]}-{wanted[1]}/{size}"
    if response.status_code != 206 or response.headers.get("content-range") != expected:
        raise RegistryError(
            ReasonCode.REGISTRY_UNAVAILABLE, f"asked for {expected}, got another answer"
        )


class _Upload:
    """One distribution-API upload session; its methods run in worker threads."""

    def __init__(self, repo: RegistryRepository, target: OciTarget) -> None:
        self.repo = repo
        self.target = target
        self.location = ""
        self.offset = 0
        self.hash = hashlib.sha256()
        self.done = False

    def _send(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> str:
        try:
            with self.repo.transport.open(
                method, self.repo.host, url, scope=self.repo.push, headers=headers, body=body
            ) as response:
                location = str(response.headers.get("location", ""))
        except RegistryError as exc:
            raise unavailable(self.target, exc) from exc
        return urljoin(url, location) if location else url

    def start(self) -> None:
        base = self.repo.transport.base_url(self.repo.host)
        url = f"{base}/v2/{self.target.repository}/blobs/uploads/"
        self.location = self._send("POST", url, b"", {})
        if self.location == url:
            raise ApiError(503, "UNAVAILABLE", f"blob store {self.target}: upload without Location")

    def patch(self, data: bytes) -> None:
        self.hash.update(data)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{self.offset}-{self.offset + len(data) - 1}",
        }
        self.location = self._send("PATCH", self.location, data, headers)
        self.offset += len(data)

    def digest_with(self, last: bytes) -> str:
        final = self.hash.copy()
        final.update(last)
        return final.hexdigest()

    def commit(self, last: bytes, hexdigest: str) -> None:
        sep = "&" if "?" in self.location else "?"
        url = f"{self.location}{sep}digest={quote('sha256:' + hexdigest, safe='')}"
        self._send("PUT", url, last, {"Content-Type": "application/octet-stream"})
        self.done = True

    def cancel(self) -> None:
        """Best effort: the registry purges abandoned sessions by itself too."""
        if self.done or not self.location:
            return
        with contextlib.suppress(ApiError):
            self._send("DELETE", self.location, b"", {})
