"""A fetch SIGKILLed at each step leaves no tree (or only journaled entries the next run
removes), and the next run publishes the complete verified tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fetch.conftest import Fetcher, tree_files

TMP = ".trustload-tmp"


@pytest.mark.parametrize("mode", ["download", "stage", "journal", "publish"])
def test_sigkill_during_fetch_leaves_no_tree_and_the_rerun_succeeds(
    fetcher: Fetcher, tmp_path: Path, mode: str
) -> None:
    arena = fetcher.arena
    name = arena.name("crash")
    files = {"model.onnx": os.urandom(300_000), "cfg/tok.json": b"{}", "z.txt": b"z"}
    rec = arena.publish(name, "1", arena.model_dir(files))
    dest = tmp_path / "models"
    src = f"trustload://{name}@production"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fetch.crashfetch", mode, src, str(dest)],
        env=fetcher.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    visible = sorted(set(os.listdir(dest)) - {TMP})
    if mode in ("download", "stage"):
        assert visible == []  # nothing outside the workspace
    else:
        journal = json.loads((dest / TMP / "journal.json").read_text())
        # Every visible entry is one the journal names, for the next run to remove.
        assert set(visible) <= set(journal["entries"]) == {"cfg", "model.onnx", "z.txt"}
        assert (visible == []) is (mode == "journal")
    assert not fetcher.audit_log.exists()  # no decision was reported
    again = fetcher.run(src, str(dest))
    assert again.returncode == 0, again.stderr
    assert sorted(os.listdir(dest)) == ["cfg", "model.onnx", "z.txt"]
    assert tree_files(dest) == {f.path: f.sha256 for f in rec.files}


def test_deny_after_a_crashed_publish_cleans_the_partial_tree(
    fetcher: Fetcher, tmp_path: Path
) -> None:
    """A crash left half a tree; the model is revoked before the pod retries: the retry
    denies and DEST ends empty (the journal's entries are removed before the gate runs)."""
    arena = fetcher.arena
    name = arena.name("crash")
    arena.publish(name, "1", arena.model_dir({"a.bin": b"a" * 1000, "b/c.bin": b"c"}))
    dest = tmp_path / "models"
    src = f"trustload://{name}@production"
    subprocess.run(
        [sys.executable, "-m", "tests.fetch.crashfetch", "publish", src, str(dest)],
        env=fetcher.env(),
        capture_output=True,
        timeout=120,
    )
    assert set(os.listdir(dest)) - {TMP}  # a partial tree is visible
    arena.admin().revoke(name, "1", "found a backdoor")
    again = fetcher.run(src, str(dest))
    assert again.returncode == 1 and "REVOKED" in json.loads(again.stdout)["reasons"]
    assert os.listdir(dest) == []
