"""atheris harness: the Registry record and directory-manifest parsers the gate applies
to every Registry answer (``trustload.client.api.parse_record``,
``trustload.gate.parse_manifest``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from _common import run

from trustload.client.api import RecordError, parse_record
from trustload.errors import TrustloadError
from trustload.gate import parse_manifest


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(TrustloadError):
        parse_manifest(data)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return
    try:
        rec = parse_record(doc)
    except RecordError:
        return
    for entry in rec.files:
        assert ".." not in entry.path.split("/") and not entry.path.startswith("/")


if __name__ == "__main__":
    run(test_one_input)
