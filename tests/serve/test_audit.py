"""Audit log hash chain and `trustload audit verify` (R7): edits, removals, reorders caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli as _cli
from trustload.audit import AuditLog, head_path, verify_chain


def _log(tmp_path: Path, n: int = 5) -> Path:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(n):
        log.append(
            {"event": "startup_permit", "model": "m", "version": str(i), "access_token": "x"}
        )
    return path


def test_chain_ok_and_secrets_scrubbed(tmp_path: Path) -> None:
    path = _log(tmp_path)
    assert verify_chain(path).ok
    assert "access_token" not in path.read_text()
    res = _cli("audit", "verify", str(path))
    assert res.returncode == 0, res.stderr
    assert "5 line(s)" in res.stdout


def _rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize(
    "tamper,bad_line",
    [
        ("edit", 4),  # the edited line still links; the next one breaks
        ("remove_middle", 3),
        ("reorder", 2),
        ("truncate_tail", 5),
        ("garbage", 4),
    ],
)
def test_tamper_detected_with_first_bad_line(tmp_path: Path, tamper: str, bad_line: int) -> None:
    path = _log(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    if tamper == "edit":
        doc = json.loads(lines[2])
        doc["version"] = "999"
        lines[2] = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    elif tamper == "remove_middle":
        del lines[2]
    elif tamper == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    elif tamper == "truncate_tail":
        del lines[4]
    elif tamper == "garbage":
        lines[3] = b"{not json\n"
    _rewrite(path, lines)
    report = verify_chain(path)
    assert not report.ok and report.first_bad_line == bad_line
    res = _cli("audit", "verify", str(path), "--json")
    assert res.returncode == 1
    assert json.loads(res.stdout)["first_bad_line"] == bad_line
    res = _cli("audit", "verify", str(path))
    assert res.returncode == 1 and f"line {bad_line}" in res.stderr


def test_head_is_kept_by_appends_from_two_logs(tmp_path: Path) -> None:
    path = _log(tmp_path, 2)
    AuditLog(path).append({"event": "serving_stop"})
    assert json.loads(head_path(path).read_text())["lines"] == 3
    assert verify_chain(path).ok


def test_missing_file_is_usage_error(tmp_path: Path) -> None:
    assert _cli("audit", "verify", str(tmp_path / "nope.jsonl")).returncode == 2
