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
import sys

from tests.support.crash import base_name, die_after_first_cache_write, die_around


def arm(mode: str) -> None:
    if mode == "download":
        die_after_first_cache_write()
    elif mode == "stage":
        die_around("link", after=lambda _src, dst, *_: "/tree/" in os.fspath(dst))
    elif mode == "publish":
        die_around("rename", after=lambda src, *_: "/.trustload-tmp/tree/" in os.fspath(src))
    elif mode == "journal":
        die_around("replace", after=lambda _src, dst, *_: base_name(dst) == "journal.json")
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    mode = sys.argv[1]
    arm(mode)
    from trustload.cli.main import main

    sys.argv = ["trustload", "fetch", *sys.argv[2:]]
    main()
    sys.exit(99)  # never reached when the instant came
