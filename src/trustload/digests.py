"""The single definition of a model's artifact digest, and fast streaming hashing.

A model is either one regular file or a directory of regular files.

* One file: ``artifact_digest = "sha256:" + sha256(file bytes)`` (what cosign and
  in-toto subjects use for a blob).
* A directory: ``artifact_digest = "sha256:" + sha256(manifest bytes)`` where the
  manifest is the canonical JSON document built by :func:`manifest_bytes` from every
  regular file's relative POSIX path, SHA-256 and size, sorted by path (the way an OCI
  image manifest names its layers). The digest is independent of mtimes, permissions
  and of where the directory lives.

This one definition is used for Registry pins, attestation subjects and the Rego
input (issue #2, "Known traps").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from trustload.decision import ReasonCode
from trustload.errors import FormatError, UsageError
from trustload.identifiers import Kind

if TYPE_CHECKING:
    from trustload.streamhash import KnownDigests

MANIFEST_MEDIA_TYPE = "application/vnd.trustload.model.manifest.v1+json"
READ_CHUNK = 4 * 1024 * 1024
"""Large reads: hashlib releases the GIL above 2 KiB, and 4 MiB keeps syscalls rare."""
MAX_MANIFEST_FILES = 100_000
MAX_PATH_LENGTH = 4096


def workers() -> int:
    return max(1, os.cpu_count() or 1)


def format_digest(hexdigest: str) -> str:
    return f"sha256:{hexdigest}"


def parse_digest(digest: str) -> str:
    """Return the hex part of ``sha256:<64 hex>``; anything else is a format error."""
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise FormatError(ReasonCode.DIGEST_MISMATCH, f"not a sha256 digest: {digest!r:.80}")
    hexpart = digest[len("sha256:") :]
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise FormatError(ReasonCode.DIGEST_MISMATCH, f"not a sha256 digest: {digest!r:.80}")
    return hexpart


def digests_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two digest strings (crypto hygiene)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def sha256_fd(fd: int, start: int = 0, end: int | None = None) -> str:
    """SHA-256 of ``[start, end)`` of an open file descriptor, read with ``pread``.

    Working on a descriptor, not a path, lets callers hash the exact bytes they
    will load (no check-then-reopen race).
    """
    h = hashlib.sha256()
    offset = start
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    while end is None or offset < end:
        want = READ_CHUNK if end is None else min(READ_CHUNK, end - offset)
        n = os.preadv(fd, [view[:want]], offset)
        if n == 0:
            break
        h.update(view[:n])
        offset += n
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file in one streaming pass."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        return sha256_fd(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, order=True)
class FileEntry:
    """One file of a model: relative POSIX path, hex SHA-256, size in bytes."""

    path: str
    sha256: str
    size: int


def check_relative_path(rel: str) -> str:
    """Refuse absolute, empty, ``..`` and non-normalised paths in manifests."""
    if not rel or len(rel) > MAX_PATH_LENGTH or "\x00" in rel or "\\" in rel:
        raise FormatError(ReasonCode.SIGNATURE_INVALID, f"bad path in manifest: {rel!r:.80}")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")):
        raise FormatError(ReasonCode.SIGNATURE_INVALID, f"unsafe path in manifest: {rel!r:.80}")
    return rel


def list_model_files(root: Path, ignore: Sequence[str] = ()) -> list[str]:
    """Every regular file below ``root`` as sorted relative POSIX paths.

    Symlinks and special files are refused (a symlink could point outside the model,
    a FIFO could block the gate forever).
    """
    ignored = {check_relative_path(p) for p in ignore}
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in list(dirnames):
            full = base / name
            if full.is_symlink():
                raise UsageError(f"symlink inside model directory refused: {full}")
        for name in filenames:
            full = base / name
            st = full.lstat()
            rel = full.relative_to(root).as_posix()
            if rel in ignored or any(rel.startswith(i + "/") for i in ignored):
                continue
            if stat.S_ISLNK(st.st_mode):
                raise UsageError(f"symlink inside model directory refused: {full}")
            if not stat.S_ISREG(st.st_mode):
                raise UsageError(f"special file inside model directory refused: {full}")
            found.append(rel)
        dirnames[:] = [
            d for d in dirnames if (base / d).relative_to(root).as_posix() not in ignored
        ]
    if len(found) > MAX_MANIFEST_FILES:
        raise UsageError(f"model has more than {MAX_MANIFEST_FILES} files")
    return sorted(found)


def hash_files(root: Path, rel_paths: Iterable[str]) -> list[FileEntry]:
    """Hash many files in parallel threads (hashlib releases the GIL)."""
    rels = list(rel_paths)

    def one(rel: str) -> FileEntry:
        full = root / rel
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            size = os.fstat(fd).st_size
            return FileEntry(rel, sha256_fd(fd), size)
        finally:
            os.close(fd)

    if len(rels) <= 1:
        return [one(r) for r in rels]
    with ThreadPoolExecutor(max_workers=min(workers(), len(rels))) as pool:
        return sorted(pool.map(one, rels))


def manifest_bytes(entries: Iterable[FileEntry]) -> bytes:
    """Canonical manifest of a directory model (sorted, compact, UTF-8 JSON)."""
    files = sorted(entries)
    seen: set[str] = set()
    for entry in files:
        check_relative_path(entry.path)
        if entry.path in seen:
            raise FormatError(ReasonCode.SIGNATURE_INVALID, f"duplicate path {entry.path!r}")
        seen.add(entry.path)
    doc = {
        "mediaType": MANIFEST_MEDIA_TYPE,
        "files": [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in files],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def manifest_digest(entries: Iterable[FileEntry]) -> str:
    return format_digest(hashlib.sha256(manifest_bytes(entries)).hexdigest())


@dataclass(frozen=True)
class MeasuredArtifact:
    """What was measured of a model on disk: its kind, files and artifact digest."""

    kind: str  # "file" | "directory"
    digest: str
    files: tuple[FileEntry, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def measure(path: str | os.PathLike[str], ignore: Sequence[str] = ()) -> MeasuredArtifact:
    """Measure a model file or directory once, hashing in parallel where it can."""
    p = Path(path)
    st = p.lstat() if p.exists() or p.is_symlink() else None
    if st is None:
        raise UsageError(f"no such model: {p}")
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(f"model path is a symlink, refused: {p}")
    if stat.S_ISREG(st.st_mode):
        entry = hash_files(p.parent, [p.name])[0]
        return MeasuredArtifact("file", format_digest(entry.sha256), (entry,))
    if stat.S_ISDIR(st.st_mode):
        entries = tuple(hash_files(p, list_model_files(p, ignore)))
        return MeasuredArtifact("directory", manifest_digest(entries), entries)
    raise UsageError(f"model path is neither a regular file nor a directory: {p}")


@dataclass(frozen=True)
class ModelLayout:
    """Where the bytes of each model file live on disk.

    A model checked out on disk maps its relative paths to themselves; a model in the
    gate's content-addressed cache maps them to ``<cache>/blobs/sha256/<hex>``. The
    signature check and the loader work on this view, so both treat a cached model
    and a working-tree model the same way.
    """

    kind: str  # "file" | "directory" | "digest" (an artifact known only by its digest)
    name: str  # the file name, or the directory's name, or the digest
    files: tuple[tuple[str, Path], ...]  # (relative POSIX path, where its bytes are), sorted
    digest: str | None = None  # kind "digest": ``sha256:<hex>``; an OCI model: its manifest's
    known: tuple[KnownDigests, ...] = ()
    """Digests the cache computed while it wrote these files (:mod:`trustload.streamhash`):
    the checks use them instead of reading a file again, while they still describe it."""
    # An OCI model (a directory whose identity is its image manifest): the manifest's bytes.
    oci_manifest: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], ignore: Sequence[str] = ()) -> ModelLayout:
        p = Path(path)
        if p.is_symlink():
            raise UsageError(f"model path is a symlink, refused: {p}")
        if p.is_file():
            return cls("file", p.name, ((p.name, p),))
        if p.is_dir():
            rels = list_model_files(p, ignore)
            return cls("directory", p.resolve().name, tuple((r, p / r) for r in rels))
        raise UsageError(f"no such model file or directory: {p}")

    @classmethod
    def for_digest(cls, digest: str) -> ModelLayout:
        """An artifact that is not here, only its SHA-256 (``verify-files sha256:<hex>``):
        a signature can bind it (hashedrekord, in-toto subject), no file can be hashed."""
        parsed = parse_sha256_reference(digest)
        if parsed is None:
            raise UsageError(f"not a sha256:<64 hex> digest: {digest!r:.100}")
        return cls("digest", parsed, (), parsed)

    def paths(self) -> dict[str, Path]:
        return dict(self.files)


def parse_sha256_reference(text: str) -> str | None:
    """``sha256:<64 hex>`` (hex in any case) as ``sha256:<lower hex>``; anything else None."""
    prefix, sep, hexdigest = text.partition(":")
    lowered = f"{prefix}{sep}{hexdigest.lower()}"
    return lowered if Kind.DIGEST.accepts(lowered) else None


def measure_layout(layout: ModelLayout) -> MeasuredArtifact:
    """Hash every file of a layout (in parallel) and derive the artifact digest."""

    def one(item: tuple[str, Path]) -> FileEntry:
        rel, where = item
        fd = os.open(where, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            return FileEntry(rel, sha256_fd(fd), os.fstat(fd).st_size)
        finally:
            os.close(fd)

    if layout.kind == "digest" and layout.digest is not None:
        return MeasuredArtifact("digest", layout.digest, ())
    if layout.oci_manifest is not None:
        from trustload.checks.oci_model import measure_oci_layout

        return measure_oci_layout(layout)
    if len(layout.files) <= 1:
        entries = [one(i) for i in layout.files]
    else:
        with ThreadPoolExecutor(max_workers=min(workers(), len(layout.files))) as pool:
            entries = list(pool.map(one, layout.files))
    entries.sort()
    if layout.kind == "file":
        return MeasuredArtifact("file", format_digest(entries[0].sha256), tuple(entries))
    return MeasuredArtifact("directory", manifest_digest(entries), tuple(entries))
