"""One pass over the bytes: every digest a model's checks need, computed as it streams.

A cold pull used to hash a model file twice: once while downloading (its SHA-256 is
its content address) and again afterwards, when the signature check hashed the file
and the engine measured the artifact digest. Here a :class:`Digester` computes the
whole-file SHA-256 from the one stream of bytes written to disk, on a thread beside
the writer (``hashlib`` releases the GIL), and the result becomes a
:class:`KnownDigests` fact. trustload signs every file in model-signing's files mode,
so that SHA-256 is all its signature needs: one hash pass in total. A cache told a
shard size (a shard-mode signer) also computes those shard digests, on a second
thread in the same pass.

Trust boundary (why a fact may stand in for reading the file):

* A fact is only ever made **in memory, by the cache, from the bytes it wrote** (or
  re-read to re-verify), and only after their SHA-256 equalled the content address the
  Registry record pins. It is never read from disk: an on-disk "stamp" would be
  writable by anyone who can write the cache directory, and so prove nothing.
* It names the file it describes and that file's identity right after the atomic
  rename (device, inode, size, mtime and ctime, see :class:`FileIdentity`). A check
  uses it only while ``lstat`` of that path still shows the same identity: a swap
  (rename, new inode), a ``chmod`` (the blob is 0444, so writing it needs one) or an
  in-place write in between makes the check read and hash the bytes again, as without
  the fact. This is defence in depth, not the guarantee: kernels before Linux 6.13
  (no multigrain timestamps) may give a write within the same clock tick the same
  timestamps.
* A fact is never trusted over a signature: its shard digests are compared with the
  signed ones exactly as freshly hashed ones would be, so a wrong fact can only deny.
* What a runtime finally loads is hashed again while it is read into memory
  (:mod:`trustload.serve.loader`) and compared with the same content address, which
  SHA-256 ties to the bytes these digests were computed from.
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trustload.digests import FileEntry, ModelLayout

READ_CHUNK = 4 * 1024 * 1024


def shard_ranges(size: int, shard_size: int) -> list[tuple[int, int]]:
    """model-signing's shards of a file: ``[k*s, min((k+1)*s, size))``; none if empty."""
    if shard_size <= 0:
        raise ValueError("shard size must be positive")
    return [(s, min(s + shard_size, size)) for s in range(0, size, shard_size)]


@dataclass(frozen=True)
class FileIdentity:
    """What changes when a file is replaced (inode) or written in place (mtime, ctime;
    the ctime cannot be set back from user space)."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class KnownDigests:
    """Digests of the exact bytes a download wrote to ``path`` (see module docstring)."""

    path: Path
    identity: FileIdentity
    sha256: str  # hex, whole file: equal to the content address it was checked against
    shard_size: int | None
    shards: tuple[str, ...]  # hex, one per :func:`shard_ranges` range, in order

    @property
    def size(self) -> int:
        return self.identity.size

    def shard_digest(self, start: int, end: int) -> str | None:
        """The digest of ``[start, end)`` if it is one of the computed shards."""
        if self.shard_size is None or start % self.shard_size:
            return None
        index = start // self.shard_size
        if index >= len(self.shards) or end != min(start + self.shard_size, self.size):
            return None
        return self.shards[index]

    def describes(self, where: Path) -> bool:
        """True iff ``where`` is the file these digests were computed for, unchanged."""
        if Path(where) != self.path:
            return False
        try:
            st = os.lstat(where)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and FileIdentity.of(st) == self.identity


def usable_facts(layout: ModelLayout) -> dict[str, KnownDigests]:
    """Relative path -> the fact for its bytes, for the files of ``layout`` whose fact
    still describes them (see :meth:`KnownDigests.describes`)."""
    by_path = {k.path: k for k in layout.known}
    out: dict[str, KnownDigests] = {}
    for rel, where in layout.files:
        fact = by_path.get(Path(where))
        if fact is not None and fact.describes(where):
            out[rel] = fact
    return out


def known_entries(layout: ModelLayout) -> tuple[FileEntry, ...] | None:
    """Every file's whole-file SHA-256 and size from the facts, if they cover the layout."""
    from trustload.digests import FileEntry

    facts = usable_facts(layout)
    if not layout.files or len(facts) < len(layout.files):
        return None
    return tuple(sorted(FileEntry(rel, f.sha256, f.size) for rel, f in facts.items()))


class Digester:
    """The whole-file SHA-256 and the shard digests of one stream of bytes.

    :meth:`update_whole` and :meth:`update_shards` may run on two threads (each owns
    its own state); :meth:`update` does both on the calling thread.
    """

    def __init__(self, shard_size: int | None) -> None:
        if shard_size is not None and shard_size <= 0:
            raise ValueError("shard size must be positive")
        self.shard_size = shard_size
        self.whole = hashlib.sha256()
        self._shard = hashlib.sha256()
        self._in_shard = 0
        self._shards: list[str] = []

    def update_whole(self, data: memoryview | bytes) -> None:
        self.whole.update(data)

    def update_shards(self, data: memoryview | bytes) -> None:
        if self.shard_size is None:
            return
        view = memoryview(data)
        while view:
            take = min(len(view), self.shard_size - self._in_shard)
            self._shard.update(view[:take])
            self._in_shard += take
            view = view[take:]
            if self._in_shard == self.shard_size:
                self._shards.append(self._shard.hexdigest())
                self._shard, self._in_shard = hashlib.sha256(), 0

    def update(self, data: memoryview | bytes) -> None:
        self.update_whole(data)
        self.update_shards(data)

    def hexdigest(self) -> str:
        return self.whole.hexdigest()

    def shards(self) -> tuple[str, ...]:
        """The shard digests so far, the trailing partial shard included."""
        tail = [self._shard.hexdigest()] if self._in_shard else []
        return (*self._shards, *tail)

    def fact(self, path: Path, st: os.stat_result) -> KnownDigests:
        """The fact for ``path`` (call once every byte was fed and the hash checked)."""
        shards = self.shards() if self.shard_size is not None else ()
        return KnownDigests(path, FileIdentity.of(st), self.hexdigest(), self.shard_size, shards)


class _Worker:
    """One consumer thread of a :class:`Pipeline`, with its own bounded queue."""

    def __init__(self, update: Callable[[memoryview | bytes], None], depth: int) -> None:
        self.update = update
        self.error: BaseException | None = None
        self.queue: queue.Queue[memoryview | bytes | None] = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self.update(item)
                except BaseException as exc:  # keep draining so the feeder never blocks
                    self.error = exc


class Pipeline:
    """Hash on other threads while this one decrypts TLS and writes the file.

    A cold pull is CPU-bound on the client (TLS decryption, SHA-256, page-cache
    writes); ``hashlib`` and ``SSL_read`` both release the GIL, so the whole-file hash
    and the shard hash of chunk *k* run while chunk *k+1* is read. Each consumer holds
    at most ``DEPTH`` waiting chunks plus the one it hashes, so a feeder that rotates
    :data:`BUFFERS` buffers never overwrites one still queued or being hashed.
    ``close()`` joins: afterwards the digester covers every fed byte.
    """

    DEPTH = 6
    BUFFERS = DEPTH + 2

    def __init__(self, digester: Digester) -> None:
        self._workers: list[_Worker] = [_Worker(digester.update_whole, self.DEPTH)]
        if digester.shard_size is not None:
            self._workers.append(_Worker(digester.update_shards, self.DEPTH))
        self._open = True

    def feed(self, chunk: memoryview | bytes) -> None:
        for worker in self._workers:
            worker.queue.put(chunk)

    def close(self) -> None:
        """Join the threads (idempotent); re-raise a hashing failure."""
        if self._open:
            self._open = False
            for worker in self._workers:
                worker.queue.put(None)
            for worker in self._workers:
                worker.thread.join()
        for worker in self._workers:
            if worker.error is not None:
                raise RuntimeError(f"hashing failed: {worker.error}") from worker.error


def digest_fd(digester: Digester, fd: int, length: int) -> int:
    """Feed the first ``length`` bytes of ``fd`` through ``digester`` (pipelined when
    there is a second digest to compute); returns the bytes read."""
    pipeline = Pipeline(digester) if length > READ_CHUNK else None
    size = max(1, min(READ_CHUNK, length))
    buffers: list[memoryview] = []  # allocated as first needed (a small file needs one)
    offset, turn = 0, 0
    try:
        while offset < length:
            if turn == len(buffers):
                buffers.append(memoryview(bytearray(size)))
            view = buffers[turn]
            turn = (turn + 1) % Pipeline.BUFFERS
            n = os.preadv(fd, [view[: min(READ_CHUNK, length - offset)]], offset)
            if n == 0:
                break
            if pipeline is None:
                digester.update(view[:n])
            else:
                pipeline.feed(view[:n])
            offset += n
    finally:
        if pipeline is not None:
            pipeline.close()
    return offset
