"""The staging/publish mechanics on a plain filesystem (no Registry)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from trustload import stagetree
from trustload.errors import UsageError


def _blob(tmp: Path, data: bytes) -> tuple[Path, str]:
    p = tmp / "cache" / hashlib.sha256(data).hexdigest()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.chmod(p, 0o444)
    return p, hashlib.sha256(data).hexdigest()


def test_staged_files_are_the_verified_inodes(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    stagetree.recover(dest)
    tmp = stagetree.prepare(dest)
    blob, hexd = _blob(tmp, b"weights")
    tree = stagetree.stage(tmp, [("a/b/w.bin", blob, hexd)])
    assert os.stat(tree / "a/b/w.bin").st_ino == os.stat(blob).st_ino  # no copy, no re-read
    assert stagetree.publish(dest, tree) == ["a"]
    assert os.listdir(dest) == ["a"] and (dest / "a/b/w.bin").read_bytes() == b"weights"


def test_copy_fallback_compares_the_bytes_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without hard links the blob is copied and hashed; bytes that no longer match the
    verified digest are refused (constant-time compare)."""

    def no_links(*_a: object, **_k: object) -> None:
        raise OSError(errno.EPERM, "no hard links here")

    monkeypatch.setattr(os, "link", no_links)
    dest = tmp_path / "d"
    stagetree.recover(dest)
    tmp = stagetree.prepare(dest)
    blob, hexd = _blob(tmp, b"weights")
    with pytest.raises(stagetree.StageError, match="do not hash"):
        stagetree.stage(tmp, [("w.bin", blob, "0" * 64)])
    stagetree.discard(dest)
    stagetree.recover(dest)
    tmp = stagetree.prepare(dest)
    blob, hexd = _blob(tmp, b"weights")
    tree = stagetree.stage(tmp, [("w.bin", blob, hexd)])
    assert (tree / "w.bin").read_bytes() == b"weights"
    assert os.stat(tree / "w.bin").st_ino != os.stat(blob).st_ino


@pytest.mark.parametrize("rel", [".trustload-tmp", ".trustload-tmp/x", "../x", "/abs"])
def test_stage_refuses_paths_outside_the_tree_or_onto_the_workspace(
    tmp_path: Path, rel: str
) -> None:
    dest = tmp_path / "d"
    stagetree.recover(dest)
    tmp = stagetree.prepare(dest)
    blob, hexd = _blob(tmp, b"x")
    with pytest.raises(stagetree.StageError):
        stagetree.stage(tmp, [(rel, blob, hexd)])
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["../outside", "a/b", ".trustload-tmp", ""])
def test_a_journal_naming_anything_but_a_top_level_entry_is_refused(
    tmp_path: Path, name: str
) -> None:
    dest = tmp_path / "d"
    (dest / ".trustload-tmp").mkdir(parents=True)
    (dest / ".trustload-tmp" / "journal.json").write_text(json.dumps({"entries": [name]}))
    (tmp_path / "outside").write_text("keep")
    with pytest.raises(UsageError):
        stagetree.recover(dest)
    assert (tmp_path / "outside").read_text() == "keep"


def test_recover_removes_a_planted_workspace_symlink_not_its_target(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    target = tmp_path / "precious"
    target.mkdir()
    (target / "f").write_text("keep")
    os.symlink(target, dest / ".trustload-tmp")
    stagetree.recover(dest)
    assert os.listdir(dest) == [] and (target / "f").read_text() == "keep"
