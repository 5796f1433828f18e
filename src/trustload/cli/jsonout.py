"""Helpers for ``--json`` output: exactly one JSON document on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
