"""Run ``trustload fetch`` and SIGKILL it at a chosen instant.

``python -m tests.fetch.crashfetch MODE SRC DEST``; MODE wraps the OS call made there
(the fetch's own code runs unmodified up to that point; SIGKILL allows no clean-up):

* ``download``: the first chunk of a blob reached the gate's cache (DEST/.trustload-tmp);
* ``stage``: the first verified blob was hard-linked into the staged tree;
* ``journal``: the publish journal was renamed into place, before any entry moved;
* ``publish``: the first top-level entry was renamed into DEST, the others not yet.
"""

from __future__ import annotations

import os
import signal
import sys


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(mode: str) -> None:
    import trustload.cache as cache

    if mode == "download":
        original = cache._write_all

        def write_then_die(fd: int, data: bytes | memoryview) -> None:
            original(fd, data)
            os.fsync(fd)
            _die()

        cache._write_all = write_then_die  # type: ignore[assignment]
        return
    real_link, real_rename, real_replace = os.link, os.rename, os.replace

    def link(src, dst, *a, **kw):  # type: ignore[no-untyped-def]
        real_link(src, dst, *a, **kw)
        if mode == "stage" and "/tree/" in os.fspath(dst):
            _die()

    def rename(src, dst, *a, **kw):  # type: ignore[no-untyped-def]
        real_rename(src, dst, *a, **kw)
        if mode == "publish" and "/.trustload-tmp/tree/" in os.fspath(src):
            _die()

    def replace(src, dst, *a, **kw):  # type: ignore[no-untyped-def]
        real_replace(src, dst, *a, **kw)
        if mode == "journal" and os.path.basename(os.fspath(dst)) == "journal.json":
            _die()

    os.link, os.rename, os.replace = link, rename, replace  # type: ignore[assignment]


if __name__ == "__main__":
    mode = sys.argv[1]
    arm(mode)
    from trustload.cli.main import main

    sys.argv = ["trustload", "fetch", *sys.argv[2:]]
    main()
    sys.exit(99)  # never reached when the instant came
