"""Tamper-evident audit log (R7): JSON Lines, each record chained to the previous one.

Every line carries ``prev`` (the SHA-256 of the previous line's exact bytes, or 64
zeros for the first) so an edited, removed or reordered line breaks the chain at a
line number that :func:`verify_chain` reports. Appends take an exclusive ``flock`` so
several processes can share one log.

A chain alone cannot show that its *last* lines were cut off, so every append also
rewrites a small sidecar ``<log>.head`` (line count and hash of the last line,
written atomically under the same lock); :func:`verify_chain` checks the log against
it when it exists. Ship the head to a separate store to make tail truncation
detectable even by an attacker who can rewrite both files.

Crash recovery (INTERFACE.md "Rules that close known attacks"). Every line is one
``write`` ending in a newline, so a crash mid-write leaves a *torn* final line with no
newline. The next append cuts it off, keeps its bytes beside the log
(``<log>.torn-<UTC time>``) and appends an ``audit_recovered`` event recording their
SHA-256 before its own record, so the chain verifies again and the loss is on record.
A missing head sidecar is re-created from the log, only if the chain verifies, with an
``audit_head_recreated`` event, so tail truncation stays detectable afterwards.

Records never contain tokens, keys or PII: :func:`scrub` drops fields whose names
say they are secret.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

GENESIS = "0" * 64
_HEAD_SUFFIX = ".head"
MAX_TORN_BYTES = 16 * 1024 * 1024  # a torn line is at most one record; keep no more
_RECOVERY_KEYS = ("at", "torn_bytes", "torn_sha256", "kept_as")
_SECRET_MARKERS = ("token", "secret", "password", "private_key", "authorization")


def scrub(record: dict[str, Any]) -> dict[str, Any]:
    """Drop any field whose name marks it as a credential, at any depth."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if any(m in key.lower() for m in _SECRET_MARKERS):
            continue
        out[key] = scrub(value) if isinstance(value, dict) else value
    return out


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def _last_line(fh: BinaryIO) -> bytes | None:
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    if end == 0:
        return None
    pos = end
    chunk = b""
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        fh.seek(pos)
        chunk = fh.read(step) + chunk
        stripped = chunk.rstrip(b"\n")
        idx = stripped.rfind(b"\n")
        if idx != -1:
            return stripped[idx + 1 :]
    return chunk.rstrip(b"\n")


def head_path(path: Path) -> Path:
    return path.with_name(path.name + _HEAD_SUFFIX)


def _read_head(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(head_path(path).read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        return {"lines": -1, "last": ""}
    return doc if isinstance(doc, dict) else {"lines": -1, "last": ""}


class AuditLog:
    """Append-only, hash-chained JSON Lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        with os.fdopen(fd, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                for event in self._recover(fh):
                    self._append_locked(fh, event)
                return self._append_locked(fh, record)
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _append_locked(self, fh: BinaryIO, record: dict[str, Any]) -> dict[str, Any]:
        last = _last_line(fh)
        prev = GENESIS if last is None else _line_hash(last)
        doc = {**scrub(record), "prev": prev}
        line = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
        fh.seek(0, os.SEEK_END)
        fh.write(line.encode() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
        self._write_head(last is None, _line_hash(line.encode()))
        return doc

    def _recover(self, fh: BinaryIO) -> list[dict[str, Any]]:
        """Repair what a crash can leave (lock held); return the events that record it."""
        events: list[dict[str, Any]] = []
        torn = _cut_torn_tail(self.path, fh)
        if torn is not None:
            events.append(torn)
        fh.seek(0, os.SEEK_END)
        if fh.tell() > 0 and _read_head(self.path) is None:
            walk = _walk(self.path)
            if walk.problem is None:
                # Only a chain that verifies gets a head: a broken one stays reportable.
                self._write_head(True, walk.last, lines=walk.lines)
                events.append(
                    {
                        "event": "audit_head_recreated",
                        "at": _now(),
                        "lines": walk.lines,
                        "last": walk.last,
                    }
                )
        return events

    def _write_head(self, first: bool, last_hash: str, *, lines: int = 1) -> None:
        """Advance the sidecar head (called with the log's lock held)."""
        from trustload.fsutil import atomic_write_bytes

        head = None if first else _read_head(self.path)
        if head is None and not first:
            return  # a broken chain without a head: verify_chain reports the chain
        lines = lines if head is None else int(head.get("lines", -1)) + 1
        if lines <= 0:
            return  # a damaged head stays damaged so verify_chain reports it
        data = json.dumps({"lines": lines, "last": last_hash}, sort_keys=True).encode() + b"\n"
        with suppress(OSError):
            atomic_write_bytes(head_path(self.path), data, 0o640)


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _cut_torn_tail(path: Path, fh: BinaryIO) -> dict[str, Any] | None:
    """Cut a final line without its newline, keep its bytes beside the log; the event."""
    from trustload.fsutil import atomic_write_bytes

    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    if end == 0:
        return None
    fh.seek(end - 1)
    if fh.read(1) == b"\n":
        return None
    pos, keep = end, 0
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        fh.seek(pos)
        idx = fh.read(step).rfind(b"\n")
        if idx != -1:
            keep = pos + idx + 1
            break
    fh.seek(keep)
    torn = fh.read(min(end - keep, MAX_TORN_BYTES))
    stamp = _now().replace(":", "").replace("-", "")
    kept = path.with_name(f"{path.name}.torn-{stamp}")
    atomic_write_bytes(kept, torn, 0o640)
    os.truncate(fh.fileno(), keep)
    os.fsync(fh.fileno())
    return {
        "event": "audit_recovered",
        "at": _now(),
        "torn_bytes": end - keep,
        "torn_sha256": hashlib.sha256(torn).hexdigest(),
        "kept_as": kept.name,
    }


@dataclass(frozen=True)
class _Walk:
    lines: int
    last: str  # hash of the last line ("" for an empty log)
    problem: str | None
    bad_line: int | None
    recovered: tuple[dict[str, Any], ...]
    heads_recreated: int


def _walk(path: Path) -> _Walk:
    prev = GENESIS
    count = 0
    recovered: list[dict[str, Any]] = []
    recreated = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            count = number
            line = raw.rstrip(b"\n")
            try:
                doc = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                problem = "not valid JSON"
                if not raw.endswith(b"\n"):
                    problem = "torn final line (a crash mid-write); the next append recovers it"
                return _Walk(number, prev, problem, number, tuple(recovered), recreated)
            if not isinstance(doc, dict) or doc.get("prev") != prev:
                problem = "hash chain broken (edited, removed or reordered)"
                return _Walk(number, prev, problem, number, tuple(recovered), recreated)
            if doc.get("event") == "audit_recovered":
                recovered.append({"line": number, **{k: doc.get(k) for k in _RECOVERY_KEYS}})
            elif doc.get("event") == "audit_head_recreated":
                recreated += 1
            prev = _line_hash(line)
    return _Walk(count, prev if count else "", None, None, tuple(recovered), recreated)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    lines: int
    first_bad_line: int | None = None
    problem: str = ""
    recovered: tuple[dict[str, Any], ...] = ()  # audit_recovered events, with line numbers
    heads_recreated: int = 0


def verify_chain(path: Path) -> ChainReport:
    """Walk the chain; report the first line (1-based) that does not link."""
    walk = _walk(path)
    if walk.problem is not None:
        return ChainReport(False, walk.lines, walk.bad_line, walk.problem, walk.recovered)
    count, prev = walk.lines, walk.last
    head = _read_head(path)
    if head is not None and (
        head.get("lines") != count or head.get("last") != (prev if count else None)
    ):
        expected = head.get("lines")
        return ChainReport(
            False,
            count,
            count + 1,
            f"log does not match its head ({expected} lines recorded): "
            "lines were removed from the end or the head was altered",
        )
    return ChainReport(True, count, recovered=walk.recovered, heads_recreated=walk.heads_recreated)
