"""Crash-safe file writing: temp file in the same directory, fsync, rename, fsync dir.

Nothing is ever visible under its final name half-written. A writer holds an
exclusive ``flock`` on its temp file (``.<name>.<random>.part``) from creation until
the rename, so :func:`remove_orphan_parts` can tell the temp file of a killed writer
(unlocked) from one being written right now (locked) and remove only the former.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

_PART = re.compile(r"\..+\.part")
_MAX_LOCK_RETRIES = 3


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _same_file(path: str, fd: int) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _locked_temp(target: Path) -> tuple[int, str]:
    """A fresh temp file, locked; retried if a sweeper removed it before the lock."""
    for _ in range(_MAX_LOCK_RETRIES):
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _same_file(tmp, fd):
            return fd, tmp
        os.close(fd)
    raise OSError(f"cannot create a temp file for {target}: removed while being created")


@contextlib.contextmanager
def atomic_writer(target: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yield a binary file; on clean exit it is fsync'd and renamed onto ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _locked_temp(target)
    fh = os.fdopen(fd, "wb")
    try:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        os.fchmod(fh.fileno(), mode)
        os.replace(tmp, target)  # still locked: a sweeper never takes it for an orphan
        fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        fh.close()


def atomic_write_bytes(target: Path, data: bytes, mode: int = 0o644) -> None:
    with atomic_writer(target, mode) as fh:
        fh.write(data)


def remove_orphan_parts(directory: Path) -> list[str]:
    """Remove temp files left by writers that died before their rename; return their names.

    Why: a SIGKILLed writer leaves ``.<name>.<random>.part`` behind; nothing reads it,
    but each crash would leave one more. A temp file whose lock can be taken has no
    live writer; one still locked is being written and is left alone.
    """
    removed: list[str] = []
    try:
        names = [n for n in os.listdir(directory) if _PART.fullmatch(n)]
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            if _same_file(path, fd):
                os.unlink(path)
                removed.append(name)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed
