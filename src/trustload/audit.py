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
                last = _last_line(fh)
                prev = GENESIS if last is None else _line_hash(last)
                doc = {**scrub(record), "prev": prev}
                line = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
                fh.seek(0, os.SEEK_END)
                fh.write(line.encode() + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
                self._write_head(last is None, _line_hash(line.encode()))
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return doc

    def _write_head(self, first: bool, last_hash: str) -> None:
        """Advance the sidecar head (called with the log's lock held)."""
        from trustload.fsutil import atomic_write_bytes

        head = None if first else _read_head(self.path)
        if head is None and not first:
            return  # a log started before heads existed: no head to keep honest
        lines = 1 if head is None else int(head.get("lines", -1)) + 1
        if lines <= 0:
            return  # a damaged head stays damaged so verify_chain reports it
        data = json.dumps({"lines": lines, "last": last_hash}, sort_keys=True).encode() + b"\n"
        with suppress(OSError):
            atomic_write_bytes(head_path(self.path), data, 0o640)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    lines: int
    first_bad_line: int | None = None
    problem: str = ""


def verify_chain(path: Path) -> ChainReport:
    """Walk the chain; report the first line (1-based) that does not link."""
    prev = GENESIS
    count = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            count = number
            line = raw.rstrip(b"\n")
            try:
                doc = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                return ChainReport(False, number, number, "not valid JSON")
            if not isinstance(doc, dict) or doc.get("prev") != prev:
                return ChainReport(
                    False, number, number, "hash chain broken (edited, removed or reordered)"
                )
            prev = _line_hash(line)
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
    return ChainReport(True, count)
