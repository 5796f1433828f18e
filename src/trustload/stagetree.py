"""Stage a verified model under ``DEST/.trustload-tmp`` and publish it into ``DEST``.

Why it is built this way (``trustload fetch``, the KServe storage initializer):

* **The bytes served are the inodes hashed.** The gate downloads into a private cache at
  ``DEST/.trustload-tmp/cache`` (same filesystem as ``DEST``); every blob is hashed while
  it streams to disk, and the engine decides on the digests of that same pass (whole
  file and signature shards, :mod:`trustload.streamhash`). Staging then
  *hard-links* each verified blob into the tree: no byte is read or copied after the
  check, so there is nothing to swap between check and use, and a model larger than RAM
  (or than twice the free disk) costs one download. The cache is fresh for every run
  (leftovers are removed first), lives in a 0700 directory this process created, and its
  blobs are 0444: no other writer exists in the init container. Only where the
  filesystem refuses hard links (``EPERM``/``ENOTSUP``) is a blob copied, from a file
  descriptor, hashing the very bytes written and comparing in constant time.
* **Read-only before publish.** Files are 0444 and every directory below the top level
  0555 before the first rename into ``DEST``. A top-level directory gets 0555 right after
  its own rename: Linux needs write permission on a directory to move it to another
  parent (its ``..`` entry changes), and the journal below is removed only after that.
* **Nothing or the complete tree.** KServe mounts ``DEST`` as an emptyDir, which cannot be
  renamed over, so publishing is one ``rename(2)`` per *top-level* entry (one rename for a
  single-file model or a model under one directory). Before the first rename a journal
  (``DEST/.trustload-tmp/journal.json``, fsync'd) names every top-level entry; it is
  removed after the last rename and the mode changes, then ``.trustload-tmp`` goes.
  A crash before the journal exists leaves only ``.trustload-tmp``; a crash after it
  leaves the journal, and the next run (:func:`recover`) deletes exactly the entries it
  names before anything else. The process exits 0 only after the journal is gone, and
  KServe starts the server container only after the init container exits 0.
* **Only an empty DEST is written.** A ``DEST`` holding anything that no journal of ours
  names is a usage error: ``trustload fetch`` never deletes files it did not write.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from trustload.digests import READ_CHUNK, check_relative_path
from trustload.errors import TrustloadError, UsageError
from trustload.fsutil import atomic_write_bytes, fsync_dir

TMP_NAME = ".trustload-tmp"
JOURNAL = "journal.json"
MAX_JOURNAL_BYTES = 1024 * 1024
FILE_MODE = 0o444
DIR_MODE = 0o555


class StageError(Exception):
    """The verified bytes could not be staged (I/O); the fetch denies, DEST stays empty."""


def workspace(dest: Path) -> Path:
    return dest / TMP_NAME


def _make_writable_tree(root: Path) -> None:
    """Our own 0555 directories must become writable again before they can be emptied."""
    for dirpath, dirnames, _files in os.walk(root, followlinks=False):
        for d in dirnames:
            p = Path(dirpath) / d
            if not p.is_symlink():
                os.chmod(p, 0o700)
    if root.is_dir() and not root.is_symlink():
        os.chmod(root, 0o700)


def remove_entry(path: Path) -> None:
    """Remove one entry we wrote (file, symlink or read-only directory tree)."""
    if path.is_symlink() or not path.exists():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    if path.is_dir():
        _make_writable_tree(path)
        shutil.rmtree(path)
    else:
        path.unlink()


def _read_journal(tmp: Path) -> list[str]:
    path = tmp / JOURNAL
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_JOURNAL_BYTES + 1)
    except FileNotFoundError:
        return []
    if len(raw) > MAX_JOURNAL_BYTES:
        raise UsageError(f"{path} is larger than {MAX_JOURNAL_BYTES} bytes")
    try:
        doc = json.loads(raw)
        names = doc["entries"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is not a trustload fetch journal") from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UsageError(f"{path} is not a trustload fetch journal")
    for name in names:  # a top-level name, never a path out of DEST
        if "/" in name or name in ("", ".", "..", TMP_NAME):
            raise UsageError(f"{path} names an entry that is not ours: {name!r}")
    return names


def recover(dest: Path) -> list[str]:
    """Remove a previous run's leftovers; return the names removed from ``DEST`` itself.

    Raises :class:`UsageError` when ``DEST`` holds anything no journal of ours names.
    """
    if dest.is_symlink():
        raise UsageError(f"destination {dest} is a symlink, refused")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create destination {dest}: {exc.strerror}") from exc
    if not dest.is_dir():
        raise UsageError(f"destination {dest} is not a directory")
    removed = _clean(dest)
    others = sorted(os.listdir(dest))
    if others:
        shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
        raise UsageError(
            f"destination {dest} is not empty ({shown}): trustload fetch writes only into "
            "an empty directory (KServe's emptyDir) and never deletes what it did not write"
        )
    return removed


def prepare(dest: Path) -> Path:
    """A fresh private workspace ``DEST/.trustload-tmp`` (after :func:`recover`)."""
    tmp = workspace(dest)
    tmp.mkdir(mode=0o700)
    fsync_dir(dest)
    return tmp


def _clean(dest: Path) -> list[str]:
    """Delete what the journal names (a publish cut short), then the workspace."""
    tmp = workspace(dest)
    removed: list[str] = []
    if tmp.is_dir() and not tmp.is_symlink():
        for name in _read_journal(tmp):
            if os.path.lexists(dest / name):
                remove_entry(dest / name)
                removed.append(name)
    if os.path.lexists(tmp):
        remove_entry(tmp)
    fsync_dir(dest)
    return removed


def discard(dest: Path) -> None:
    """A deny or a failure: nothing of this run may stay in ``DEST``."""
    with contextlib.suppress(FileNotFoundError):
        _clean(dest)


def _copy_verified(src: Path, target: Path, sha256_hex: str) -> None:
    """Fallback without hard links: copy from one descriptor, hashing the bytes written."""
    h = hashlib.sha256()
    fd_in = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        fd_out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            while chunk := os.read(fd_in, READ_CHUNK):
                h.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd_out, view) :]
            os.fsync(fd_out)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
    if not hmac.compare_digest(h.hexdigest(), sha256_hex.lower()):
        raise StageError(f"{target.name}: the bytes copied do not hash to the verified digest")


def _link_or_copy(src: Path, target: Path, sha256_hex: str) -> None:
    try:
        os.link(src, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.EXDEV):
            raise
        _copy_verified(src, target, sha256_hex)


def stage(tmp: Path, files: Iterable[tuple[str, Path, str]]) -> Path:
    """Build the read-only tree ``tmp/tree`` from ``(relative path, verified blob, hex)``."""
    tree = tmp / "tree"
    try:
        tree.mkdir(mode=0o700)
        dirs: set[Path] = set()
        for rel, blob, hexdigest in files:
            target = tree / check_relative_path(rel)
            if target.relative_to(tree).parts[0] == TMP_NAME:
                raise StageError(f"a model file may not be named {TMP_NAME}: {rel}")
            for parent in reversed(target.relative_to(tree).parents[:-1]):
                d = tree / parent
                if d not in dirs:
                    d.mkdir(mode=0o700)
                    dirs.add(d)
            _link_or_copy(blob, target, hexdigest)
            os.chmod(target, FILE_MODE)
        # Deepest first, so a directory is sealed only after everything under it.
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(d)
            if d.parent != tree:
                os.chmod(d, DIR_MODE)
        fsync_dir(tree)
    except (OSError, ValueError, UsageError, TrustloadError) as exc:
        raise StageError(f"staging the verified files failed: {exc}") from exc
    return tree


def publish(dest: Path, tree: Path) -> list[str]:
    """Move the staged tree's top-level entries into ``DEST`` under a journal."""
    tmp = tree.parent
    names = sorted(os.listdir(tree))
    try:
        atomic_write_bytes(tmp / JOURNAL, json.dumps({"entries": names}).encode(), 0o600)
        for name in names:
            os.rename(tree / name, dest / name)
            if stat.S_ISDIR(os.lstat(dest / name).st_mode):
                os.chmod(dest / name, DIR_MODE)
        fsync_dir(dest)
        os.unlink(tmp / JOURNAL)
        fsync_dir(tmp)
    except OSError as exc:
        raise StageError(f"publishing into {dest} failed: {exc}") from exc
    discard(dest)
    return names
