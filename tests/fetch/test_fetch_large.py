"""A model larger than the fetch's memory budget streams through: a 2 GiB (+1 page) file,
published for real, fetched over mTLS, hard-linked (not copied) into DEST, with the
fetch's peak RSS measured by the kernel (wait4)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fetch.conftest import Fetcher

SIZE = 2 * 1024**3 + 4096  # beyond 31-bit offsets
RSS_LIMIT_KIB = 400 * 1024
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_pid, status, usage = os.wait4(child.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""The fetch runs as the child of this small process, not of pytest: a child's ru_maxrss
counts the memory of the process it was spawned from until its exec (Linux records the
old mm's high-water mark at exec), so measured straight from an xdist worker that has
run many tests it reported that worker's RSS (430 MiB), not the fetch's (~85 MiB)."""


def _sparse_model(path: Path) -> None:
    """Fast to make: random head and tail, a sparse (zero) middle the kernel reads fast."""
    with path.open("wb") as fh:
        fh.write(os.urandom(1 << 20))
        fh.truncate(SIZE - (1 << 20))
        fh.seek(SIZE - (1 << 20))
        fh.write(os.urandom(1 << 20))


@pytest.mark.slow  # ~20 s of CPU, 110 s wall at load 13 on 2 cores (publish hashes it 3x)
def test_multi_gib_model_streams_with_bounded_rss(fetcher: Fetcher, tmp_path: Path) -> None:
    arena = fetcher.arena
    model = arena.workdir() / "big.onnx"
    _sparse_model(model)
    name = arena.name("big")
    rec = arena.publish(name, "1", model)
    model.unlink()
    dest = tmp_path / "models"
    started = time.monotonic()
    rss_file = tmp_path / "maxrss"
    proc = subprocess.Popen(
        [sys.executable, "-c", _MEASURE, str(rss_file)]
        + fetcher.argv(f"trustload://{name}@production", str(dest)),
        env=fetcher.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate()
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, err.decode()
    maxrss = int(rss_file.read_text())
    assert b'"decision": "permit"' in out
    published = dest / "big.onnx"
    st = published.stat()
    assert st.st_size == SIZE == rec.artifact_size
    assert st.st_nlink == 1  # the cache link went with the workspace; no second copy
    assert maxrss < RSS_LIMIT_KIB, f"peak RSS {maxrss} KiB"
    print(f"fetched {SIZE / 2**30:.1f} GiB in {elapsed:.1f}s, peak RSS {maxrss} KiB")
