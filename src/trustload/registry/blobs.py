"""Where the Registry keeps blob bytes: the :class:`BlobBackend` seam, and its embedded
default, a content-addressed filesystem store ``<data_dir>/blobs/sha256/<hex>``.

A backend stores and serves bytes by digest and nothing else: who may see a blob
(tenancy, ownership) is decided in store.py before a backend is asked. The other
backend, an OCI registry (``[server] blob_store = "oci://HOST/REPO"``), lives in
blobs_oci.py; with it and PostgreSQL the Registry keeps no state on its own disk.

Uploads are streamed into a temporary file in the same filesystem while being hashed
and counted; the bytes become visible under their final name only after the digest
matches the one claimed (constant-time compare), the file is fsync'd and renamed
atomically (INTERFACE.md "Nothing is ever written there under its final name before
it is verified"). A body longer than its declared length, or than the configured
limit, is refused as soon as the extra byte arrives.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
from anyio import to_thread
from starlette.responses import FileResponse, Response

from trustload.digests import digests_equal
from trustload.fsutil import fsync_dir
from trustload.identifiers import Kind, is_valid
from trustload.registry.errors import bad_request

STALE_UPLOAD_SECONDS = 24 * 3600.0
IDLE_TIMEOUT = 60.0
"""Seconds an upload may stall between two chunks before it is cut off."""
WRITE_BATCH = 1024 * 1024
"""Chunks are batched to 1 MiB before hashing/writing in a worker thread: fewer thread
hops, and hashlib releases the GIL on large updates."""


def check_hex(hexdigest: str) -> str:
    if not is_valid(Kind.HEX64, hexdigest):
        raise bad_request("a blob is named by 64 lowercase hex characters of its SHA-256")
    return hexdigest


@dataclass(frozen=True)
class Stored:
    hexdigest: str
    size: int
    created: bool


class BlobBackend(Protocol):
    """Bytes by digest. Every method may raise an ``ApiError`` (503 when the storage
    behind it cannot answer); none decides visibility."""

    def size(self, hexdigest: str) -> int | None:
        """The stored blob's size, or None when it is not stored."""
        ...

    def read_small(self, hexdigest: str, limit: int) -> bytes:
        """A blob that must be small (a directory manifest), verified, bounded."""
        ...

    async def ingest(
        self,
        hexdigest: str,
        chunks: AsyncIterator[bytes],
        declared: int,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> Stored:
        """Store the body iff it is exactly ``declared`` bytes hashing to ``hexdigest``;
        nothing is visible under the digest otherwise."""
        ...

    def serve(self, hexdigest: str, size: int, range_header: str | None, head: bool) -> Response:
        """The download answer (200, or 206 for one byte range), streamed."""
        ...


class BlobResponse(FileResponse):
    """Large reads (fewer thread hops) and a single byte range at most."""

    chunk_size = 4 * 1024 * 1024
    max_ranges = 1


class _Sink:
    """A temp file plus a running hash; its methods run in worker threads."""

    def __init__(self, tmp_dir: Path) -> None:
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=tmp_dir)
        self.fd = fd
        self.path = Path(name)
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)

    def finish(self) -> str:
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        return self.hash.hexdigest()

    def discard(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def _with_idle_timeout(chunks: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    iterator = chunks.__aiter__()
    while True:
        try:
            with anyio.fail_after(seconds):
                chunk = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise bad_request(f"upload stalled for {seconds:g} s", 408) from exc
        yield chunk


class BlobStore:
    """The filesystem backend (the embedded default)."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "blobs" / "sha256"
        self.tmp = data_dir / "blobs" / "tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.sweep_stale_uploads()

    def sweep_stale_uploads(self, older_than: float = STALE_UPLOAD_SECONDS) -> int:
        """Remove temp files a crash left behind. Only old ones: another Registry process
        sharing ``data_dir`` may be receiving an upload right now."""
        removed = 0
        cutoff = time.time() - older_than
        for entry in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if entry.name.startswith("upload-") and entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
        return removed

    def path(self, hexdigest: str) -> Path:
        return self.root / check_hex(hexdigest)

    def exists(self, hexdigest: str) -> bool:
        return self.path(hexdigest).is_file()

    def size(self, hexdigest: str) -> int | None:
        try:
            return self.path(hexdigest).stat().st_size
        except FileNotFoundError:
            return None

    def serve(self, hexdigest: str, size: int, range_header: str | None, head: bool) -> Response:
        del size, range_header, head  # FileResponse answers HEAD and Range itself
        return BlobResponse(
            self.path(hexdigest),
            media_type="application/octet-stream",
            headers={"etag": f'"sha256:{hexdigest}"'},
        )

    def read_small(self, hexdigest: str, limit: int) -> bytes:
        """Read a blob that must be small (a directory manifest): bounded."""
        p = self.path(hexdigest)
        with p.open("rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise bad_request(f"blob sha256:{hexdigest} is larger than {limit} bytes", 413)
        return data

    async def ingest(
        self,
        hexdigest: str,
        chunks: AsyncIterator[bytes],
        declared: int,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> Stored:
        """Store the body if (and only if) it is exactly ``declared`` bytes hashing to
        ``hexdigest``. On any failure the temp file is removed and nothing is visible.
        A client that sends nothing for ``idle_timeout`` seconds is cut off (408)."""
        check_hex(hexdigest)
        sink = _Sink(self.tmp)
        try:
            pending: list[bytes] = []
            pending_size = 0
            received = 0
            async for chunk in _with_idle_timeout(chunks, idle_timeout):
                if not chunk:
                    continue
                received += len(chunk)
                if received > declared:
                    raise bad_request("body longer than its Content-Length")
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= WRITE_BATCH:
                    await to_thread.run_sync(sink.write, b"".join(pending))
                    pending, pending_size = [], 0
            if pending:
                await to_thread.run_sync(sink.write, b"".join(pending))
            if received != declared:
                raise bad_request(f"body truncated: {received} of {declared} bytes")
            actual = await to_thread.run_sync(sink.finish)
            if not digests_equal(actual, hexdigest):
                raise bad_request(
                    f"digest mismatch: body hashes to sha256:{actual}, not sha256:{hexdigest}"
                )
            # One path whether or not these bytes are already stored (maybe for another
            # tenant): the whole body was streamed and hashed above, and it replaces the
            # identical file atomically. No existence short-cut, so no timing oracle.
            final = self.root / hexdigest
            existed = final.is_file()
            os.chmod(sink.path, 0o444)
            os.replace(sink.path, final)
            await to_thread.run_sync(fsync_dir, self.root)
            return Stored(hexdigest, declared, created=not existed)
        except BaseException:
            sink.discard()
            raise
