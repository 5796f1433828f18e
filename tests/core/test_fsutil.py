"""Orphan temp files of killed writers are swept; a live writer's temp file never is."""

from __future__ import annotations

from pathlib import Path

from trustload.fsutil import atomic_write_bytes, atomic_writer, remove_orphan_parts
from trustload.state import load_state


def test_orphan_part_removed_live_writer_kept(tmp_path: Path) -> None:
    orphan = tmp_path / ".trusted-abc.json.x1y2.part"
    orphan.write_bytes(b'{"half": ')
    keep = tmp_path / "trusted-abc.json.part"  # not a temp-file name: never touched
    keep.write_bytes(b"x")
    elsewhere = tmp_path / "outside"
    elsewhere.write_bytes(b"precious")
    (tmp_path / ".link.part").symlink_to(elsewhere)
    target = tmp_path / "trusted-def.json"
    with atomic_writer(target) as fh:
        fh.write(b"new")
        live = [p for p in tmp_path.iterdir() if p.name.startswith(".trusted-def.json.")]
        assert len(live) == 1
        assert remove_orphan_parts(tmp_path) == [orphan.name]
        assert live[0].exists()  # locked by this writer: left alone
    assert target.read_bytes() == b"new"
    assert keep.exists() and elsewhere.read_bytes() == b"precious"
    assert (tmp_path / ".link.part").is_symlink()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".trusted-")]


def test_load_state_sweeps_its_directory(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "other.json", b"{}")
    (tmp_path / ".trusted-0123.json.abcd.part").write_bytes(b"{")
    assert load_state(tmp_path, "risk", "prod") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json"]
    assert load_state(tmp_path / "missing", "risk", "prod") is None
