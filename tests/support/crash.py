"""SIGKILL a child process at a chosen instant of the real code (crash-consistency tests).

The code under test runs unmodified; only the OS call (or the cache's write helper) made
at the chosen instant is wrapped, and the process then dies with SIGKILL, which leaves
no chance to clean up: what is on disk afterwards is exactly what a power cut or an OOM
kill would leave. Used by ``tests/faults/crashgate.py`` and ``tests/fetch/crashfetch.py``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any, NoReturn


def die() -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("SIGKILL did not kill")  # pragma: no cover


def base_name(path: str | os.PathLike[str]) -> str:
    return os.path.basename(os.fspath(path))


def fd_name(fd: int) -> str:
    """The file name behind an open descriptor ('' when it cannot be read)."""
    try:
        return os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return ""


def die_after_first_cache_write() -> None:
    """Die once the first chunk of a blob download reached the cache's partial file."""
    import trustload.cache as cache

    original = cache._write_all

    def write_then_die(fd: int, data: bytes | memoryview) -> None:
        original(fd, data)
        os.fsync(fd)
        die()

    cache._write_all = write_then_die  # type: ignore[assignment]


def die_around(
    name: str,
    *,
    before: Callable[..., bool] | None = None,
    after: Callable[..., bool] | None = None,
) -> None:
    """Replace ``os.<name>`` so the process dies just before (or just after) the real call
    whose positional arguments satisfy the predicate."""
    real = getattr(os, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before is not None and before(*args):
            die()
        result = real(*args, **kwargs)
        if after is not None and after(*args):
            die()
        return result

    setattr(os, name, wrapper)
