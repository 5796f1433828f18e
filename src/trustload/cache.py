"""The gate's content-addressed blob cache: ``<cache>/blobs/sha256/<hex>`` (R3.4, R5).

Why it looks like this:

* **By digest only.** A blob is named by the SHA-256 the Registry record pins; nothing
  appears under its final name before its bytes hashed to that name (temp file in the
  same directory, fsync, constant-time compare, atomic rename, fsync of the directory).
* **One pass.** A download is hashed while it streams to disk, so a cold pull costs one
  read of the network and no second read of the disk. Its SHA-256 is also the digest a
  files-mode model signature (trustload's own, for every size) needs; a cache told a
  shard size also computes shard digests in the same pass (:mod:`trustload.streamhash`).
  A :class:`BlobResult` hands them on as an in-memory fact, so the checks do not read
  the file again. Every source that streams through :meth:`BlobCache.ensure` gets them.
* **Bounded.** Bytes beyond the recorded size are refused as they arrive; an answer
  that ends cleanly but short is the wrong content (DIGEST_MISMATCH); a connection that
  breaks mid-body is resumed with ``Range`` a bounded number of times, then
  REGISTRY_UNAVAILABLE.
* **Re-verified on every load.** A cached blob is hashed again each time it is used; one
  that no longer matches is evicted and fetched again once; still wrong ->
  DIGEST_MISMATCH.
* **Shared.** A per-blob ``flock`` lets several gates use one cache directory; the
  partial file has a stable name so whoever holds the lock next resumes it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustload.decision import ReasonCode
from trustload.digests import digests_equal, parse_digest
from trustload.errors import RegistryError, TrustloadError
from trustload.fsutil import fsync_dir
from trustload.identifiers import parse_decimal
from trustload.streamhash import Digester, KnownDigests, Pipeline, digest_fd

if TYPE_CHECKING:
    from trustload.sources.base import BlobClient

DEFAULT_LOCK_TIMEOUT = 3600.0
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
WATCH_IN_FLIGHT = 1024 * 1024  # the transport's read buffer: bytes a blocked read may hold


class CacheDigestError(TrustloadError):
    def __init__(self, message: str) -> None:
        super().__init__(ReasonCode.DIGEST_MISMATCH, message)


@dataclass(frozen=True)
class BlobResult:
    """A verified blob in the cache and how it got there."""

    path: Path
    digest: str
    size: int
    fetched: bool  # downloaded (in full or resumed) during this call
    evicted: bool  # a cached copy failed re-verification and was replaced
    resumed_from: int = 0  # bytes already on disk when the download (re)started
    hashed: bool = True  # False: a cached copy handed on unhashed (``reverify=False``)
    known: KnownDigests | None = None  # digests of these bytes, computed as they were hashed


def facts_of(results: Iterable[BlobResult]) -> tuple[KnownDigests, ...]:
    """The in-memory digest facts of ``results``, for a :class:`ModelLayout` over them."""
    return tuple(r.known for r in results if r.known is not None)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Sink:
    """Where a download's bytes go: the file, the digest :class:`Pipeline`, and disk.

    The blob is fsync'd before it is renamed into place; for a large model that final
    fsync used to write the whole file to disk after the last byte arrived (the kernel
    starts writeback on its own only past ``dirty_background_ratio``). A flusher thread
    ``fdatasync``s every :data:`FLUSH_EVERY` bytes instead, so the disk works while the
    network does and the final fsync only has the tail left. Its errors are ignored:
    the final fsync reports them. ``close()`` joins both threads (idempotent).
    """

    FLUSH_EVERY = 64 * 1024 * 1024

    def __init__(self, fd: int, dig: Digester) -> None:
        self.fd = fd
        self.pipeline = Pipeline(dig)
        self._unflushed = 0
        self._flush, self._stop = threading.Event(), False
        self._flusher: threading.Thread | None = threading.Thread(target=self._run, daemon=True)
        self._flusher.start()

    def _run(self) -> None:
        while True:
            self._flush.wait()
            if self._stop:
                return
            self._flush.clear()
            with contextlib.suppress(OSError):
                os.fdatasync(self.fd)

    def put(self, chunk: memoryview | bytes) -> None:
        _write_all(self.fd, chunk)
        self.pipeline.feed(chunk)
        self._unflushed += len(chunk)
        if self._unflushed >= self.FLUSH_EVERY:
            self._unflushed = 0
            self._flush.set()

    def close(self) -> None:
        if self._flusher is not None:  # joined before the caller truncates or closes fd
            self._stop = True
            self._flush.set()
            self._flusher.join()
            self._flusher = None
        self.pipeline.close()


@dataclass
class _Partial:
    """The verified-so-far prefix of a download: its length and running digests."""

    have: int
    dig: Digester


class BlobCache:
    """Content-addressed blobs under ``root/blobs/sha256``; locks under ``root/locks``."""

    def __init__(
        self,
        root: Path,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        progress: bool | None = None,
        shard_plan: Callable[[int | None], int | None] | None = None,
    ) -> None:
        """``shard_plan`` maps a recorded size to the shard size whose digests a
        download of that size computes as it streams (None: whole-file SHA-256 only).

        The default plans none: trustload signs every file in files mode, whose digest
        *is* the whole-file SHA-256, so a second hash over the bytes would be wasted CPU
        on the cold path. A shard-mode signature from another signer still verifies; its
        check hashes the shards after the download."""
        self.root = root
        self.shard_plan = shard_plan
        self.blobs = root / "blobs" / "sha256"
        self.locks = root / "locks"
        self.lock_timeout = lock_timeout
        self.progress = sys.stderr.isatty() if progress is None else progress

    def _digester(self, size: int | None) -> Digester:
        return Digester(self.shard_plan(size) if self.shard_plan is not None else None)

    def path_for(self, digest: str) -> Path:
        return self.blobs / parse_digest(digest)

    # ------------------------------------------------------------------ locking
    @contextlib.contextmanager
    def _locked(self, hexdigest: str) -> Iterator[None]:
        self.locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.locks / f"{hexdigest}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise RegistryError(
                            ReasonCode.REGISTRY_UNAVAILABLE,
                            f"cache lock for {hexdigest[:16]} held too long by another gate",
                        ) from exc
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # ------------------------------------------------------------ verification
    def verify_cached(self, digest: str, size: int | None) -> KnownDigests | None:
        """Hash the cached copy again; its digests iff it is exactly the pinned bytes.

        Planned shard digests are computed in the same read (:mod:`trustload.streamhash`).
        """
        path = self.path_for(digest)
        try:
            # O_NONBLOCK: a FIFO planted under the blob's name must not block the gate.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            if size is not None and st.st_size != size:
                return None
            dig = self._digester(size)
            if digest_fd(dig, fd, st.st_size) != st.st_size:
                return None
            if not digests_equal(dig.hexdigest(), parse_digest(digest)):
                return None
            return dig.fact(path, os.fstat(fd))
        finally:
            os.close(fd)

    @staticmethod
    def _plausible(path: Path, size: int) -> bool:
        """A regular file (not a FIFO, device or symlink) of exactly ``size`` bytes."""
        try:
            st = os.lstat(path)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == size

    def evict(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path_for(digest))

    # ------------------------------------------------------------------- fetch
    def ensure(
        self,
        client: BlobClient,
        digest: str,
        size: int | None,
        *,
        limit: int,
        label: str = "",
        reverify: bool = True,
    ) -> BlobResult:
        """Return a verified cached copy of ``digest``, downloading it if needed.

        ``size`` is the recorded size when the Registry pins one (model files); for
        evidence blobs whose size is not recorded, ``limit`` bounds what is accepted.
        ``reverify=False`` hands on a cached copy that is a regular file of the right
        size *without* hashing it, for a caller that hashes those exact bytes itself
        right away (the gate's engine does, on every load) and calls again with
        ``reverify=True`` when they do not match; a download is always hashed.
        """
        hexdigest = parse_digest(digest)
        cap = size if size is not None else limit
        if size is not None and size > limit:
            raise RegistryError(
                ReasonCode.REGISTRY_UNAVAILABLE,
                f"{label or 'blob'} of {size} bytes exceeds the configured limit of {limit}",
            )
        self.blobs.mkdir(parents=True, exist_ok=True)
        with self._locked(hexdigest):
            final = self.blobs / hexdigest
            evicted = False
            if not reverify and size is not None and self._plausible(final, size):
                return BlobResult(final, digest, size, False, False, hashed=False)
            if final.exists():
                known = self.verify_cached(digest, size)
                if known is not None:
                    return BlobResult(final, digest, known.size, False, False, known=known)
                self.evict(digest)  # tampered or rotten: fetch again, once
                evicted = True
            part = final.with_name(f".{hexdigest}.partial")
            had_partial = part.exists()
            try:
                known, resumed = self._download(client, hexdigest, size, cap, final, label)
            except CacheDigestError:
                if not had_partial:
                    raise
                # The prefix left by an earlier run may be what was wrong (the partial
                # was removed on the mismatch): fetch from byte 0, once.
                known, resumed = self._download(client, hexdigest, size, cap, final, label)
            return BlobResult(final, digest, known.size, True, evicted, resumed, known=known)

    def _download(
        self,
        client: BlobClient,
        hexdigest: str,
        size: int | None,
        cap: int,
        final: Path,
        label: str,
    ) -> tuple[KnownDigests, int]:
        part = final.with_name(f".{hexdigest}.partial")
        fd = os.open(part, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        keep_partial = False
        try:
            have = os.fstat(fd).st_size
            if have > cap:
                os.ftruncate(fd, 0)
                have = 0
            state = _Partial(have, self._digester(size))
            if have:
                digest_fd(state.dig, fd, have)
            resumed_from = have
            attempts = 1 + max(0, client.cfg.retries)
            with self._progress(label or hexdigest[:12], size, have) as advance:
                for attempt in range(attempts):
                    try:
                        self._stream_into(client, hexdigest, fd, state, cap, advance)
                        break
                    except RegistryError as exc:
                        # Whatever half-written chunk follows the hashed prefix goes.
                        os.ftruncate(fd, state.have)
                        if state.have and getattr(exc, "status", None) == 416:
                            # Nothing after the kept prefix: it is already the whole blob
                            # (a crash between fsync and rename). The hash check decides.
                            break
                        if exc.code is not ReasonCode.REGISTRY_UNAVAILABLE:
                            raise
                        if attempt + 1 >= attempts:
                            keep_partial = True  # a later run resumes it with Range
                            raise
                        client.transport.backoff(attempt)
            have, dig = state.have, state.dig
            if size is not None and have != size:
                raise CacheDigestError(
                    f"registry sent {have} bytes of {label or 'blob'} {hexdigest[:16]}, "
                    f"the record says {size}"
                )
            os.fsync(fd)
            if not digests_equal(dig.hexdigest(), hexdigest):
                raise CacheDigestError(
                    f"downloaded {label or 'blob'} hashes to sha256:{dig.hexdigest()[:16]}..., "
                    f"pinned sha256:{hexdigest[:16]}..."
                )
            os.chmod(part, 0o444)
            os.replace(part, final)
            fsync_dir(final.parent)
            # The fact names the file's identity after the rename (which moves ctime).
            return dig.fact(final, os.fstat(fd)), resumed_from
        except BaseException:
            if not keep_partial:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part)
            raise
        finally:
            os.close(fd)

    @staticmethod
    def _stream_into(
        client: BlobClient,
        hexdigest: str,
        fd: int,
        state: _Partial,
        cap: int,
        advance: Any,
    ) -> None:
        """One GET from ``state.have`` on; appends to ``fd`` while hashing into ``state``.

        ``state`` always describes exactly the bytes on disk that were hashed, so a
        connection that drops mid-way leaves a prefix the next attempt resumes.
        """
        from trustload.client.transport import RateFloor, translate

        with client.open_blob(f"sha256:{hexdigest}", offset=state.have) as resp:
            if state.have and resp.status_code != 206:
                # The server ignored Range: start over from byte 0.
                os.ftruncate(fd, 0)
                state.have, state.dig = 0, Digester(state.dig.shard_size)
            elif state.have:
                content_range = resp.headers.get("content-range") or ""
                if not content_range.startswith(f"bytes {state.have}-"):
                    raise RegistryError(
                        ReasonCode.REGISTRY_UNAVAILABLE, f"bad Content-Range {content_range!r:.80}"
                    )
            declared = parse_decimal(resp.headers.get("content-length"))
            if declared is not None and state.have + declared > cap:
                raise CacheDigestError(
                    f"registry offers {state.have + declared} bytes for "
                    f"sha256:{hexdigest[:16]}..., more than the {cap} recorded/allowed"
                )
            os.lseek(fd, state.have, os.SEEK_SET)
            floor = RateFloor(client.cfg.min_download_rate, client.cfg.slow_grace, str(resp.url))
            # A blocked read only returns when its buffer is full, so a drip-feed is
            # watched from beside: cut the connection once even the bytes that could be
            # in flight would leave the average below the floor (TUF slow retrieval).
            done, tripped = threading.Event(), threading.Event()
            in_flight = min(WATCH_IN_FLIGHT, max(0, cap - state.have))

            def watchdog() -> None:
                while not done.wait(0.2):
                    if floor.starved(in_flight):
                        tripped.set()
                        abort = getattr(resp, "abort", None)
                        if abort is not None:
                            abort()
                        return

            threading.Thread(target=watchdog, daemon=True).start()
            sink = _Sink(fd, state.dig)
            try:
                for chunk in resp.iter_raw(buffers=Pipeline.BUFFERS):
                    n = len(chunk)
                    floor.update(n)
                    if state.have + n > cap:
                        raise CacheDigestError(
                            f"registry sent more than the {cap} bytes recorded for "
                            f"sha256:{hexdigest[:16]}..."
                        )
                    sink.put(chunk)
                    state.have += n
                    advance(n)
                sink.close()
            except TrustloadError:
                raise
            except Exception as exc:  # httpx/OS errors become RegistryError
                if tripped.is_set():
                    raise floor.error() from exc
                # The handshake and the request already succeeded: whatever breaks
                # mid-body (reset, TLS EOF, timeout) is an interrupted download.
                err = translate(exc, str(resp.url))
                raise RegistryError(ReasonCode.REGISTRY_UNAVAILABLE, err.message) from exc
            finally:
                done.set()
                sink.close()  # idempotent: state.dig now covers exactly state.have bytes
            if tripped.is_set():
                raise floor.error()

    @contextlib.contextmanager
    def _progress(self, label: str, size: int | None, done: int) -> Iterator[Any]:
        if not self.progress or (size is not None and size < PROGRESS_MIN_BYTES):
            yield lambda n: None
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(label, total=size, completed=done)
            yield lambda n: bar.advance(task, n)
