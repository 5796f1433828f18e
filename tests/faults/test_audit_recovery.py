"""The audit log after a crash mid-write and after its head sidecar was deleted
(INTERFACE.md "Rules that close known attacks", audit bullet; issue 8 item 8).

The torn line is produced by the real gate, SIGKILLed half-way through writing its
decision line (``tests/faults/crashgate.py``, mode ``audit-write``); recovery is done by
the next real gate start."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from tests.attacks.helpers import Arena, Gate, with_gate
from tests.faults.crashgate import command
from trustload.audit import AuditLog, head_path, verify_chain

ROOT = Path(__file__).resolve().parents[2]


def audit_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustload.cli.main", "audit", "verify", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def crash_mid_audit_write(gate: Gate, ref: str, log: Path) -> None:
    proc = subprocess.run(
        command(gate, ref, "audit-write", audit_log=log),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == -9, proc.stderr + proc.stdout


def test_torn_final_line_is_cut_kept_and_recorded(arena: Arena, gate: Gate) -> None:
    name = arena.good()
    ref = f"{name}@production"
    log = gate.root / "audit.jsonl"
    cfg = with_gate(gate.cfg, audit_log=log)
    assert gate.run(ref, cfg).decision.permitted  # one complete line
    crash_mid_audit_write(gate, ref, log)
    raw = log.read_bytes()
    assert not raw.endswith(b"\n"), "the kill left no torn line: the test would prove nothing"
    torn = raw[raw.rindex(b"\n") + 1 :]
    assert torn and not verify_chain(log).ok
    assert "torn final line" in verify_chain(log).problem

    assert gate.run(ref, cfg).decision.permitted  # the next start recovers, then appends
    report = verify_chain(log)
    assert report.ok, report
    assert report.lines == 3  # the first decision, audit_recovered, the new decision
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [d["event"] for d in lines] == ["startup_permit", "audit_recovered", "startup_permit"]
    (event,) = report.recovered
    assert event["line"] == 2 and event["torn_bytes"] == len(torn)
    assert event["torn_sha256"] == hashlib.sha256(torn).hexdigest()
    kept = log.with_name(event["kept_as"])
    assert kept.name.startswith("audit.jsonl.torn-") and kept.read_bytes() == torn
    res = audit_cli(str(log))
    assert res.returncode == 0, res.stderr
    assert "audit_recovered" in res.stdout and event["torn_sha256"] in res.stdout
    doc = json.loads(audit_cli(str(log), "--json").stdout)
    assert doc["ok"] is True and doc["recovered"][0]["torn_sha256"] == event["torn_sha256"]


def _log(path: Path, n: int) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.append({"event": "startup_permit", "version": str(i)})
    return log


def test_deleted_head_is_recreated_so_truncation_stays_detectable(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = _log(path, 4)
    head_path(path).unlink()
    log.append({"event": "serving_stop"})
    head = json.loads(head_path(path).read_text())
    assert head["lines"] == 6  # 4 + audit_head_recreated + the new record
    events = [json.loads(x)["event"] for x in path.read_text().splitlines()]
    assert events[-2:] == ["audit_head_recreated", "serving_stop"]
    report = verify_chain(path)
    assert report.ok and report.heads_recreated == 1
    assert "re-created" in audit_cli(str(path)).stdout
    # An attacker now cuts the tail (the evidence of the deletion with it): detected.
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:4]))
    report = verify_chain(path)
    assert not report.ok and "head" in report.problem
    assert audit_cli(str(path)).returncode == 1


def test_head_is_not_recreated_over_a_broken_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = _log(path, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[2])  # a line removed, then the head deleted
    head_path(path).unlink()
    log.append({"event": "serving_stop"})
    assert not head_path(path).exists()
    report = verify_chain(path)
    assert not report.ok and report.first_bad_line == 2
