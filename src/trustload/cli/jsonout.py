"""How a command prints a decision: exactly one JSON document on stdout (``--json``), or a
readable one-line-per-check summary on stderr. No typer: fast commands use it too."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def summary(doc: dict[str, Any]) -> list[str]:
    """A readable, one-line-per-check rendering of a decision document."""
    lines: list[str] = []
    checks = doc.get("checks")
    for check in checks if isinstance(checks, list) else []:
        mark = "ok  " if check.get("ok") else "FAIL"
        code = f" {check['code']}" if check.get("code") else ""
        lines.append(
            f"{mark} {check.get('name')}{code}: {check.get('detail')} ({check.get('ms')} ms)"
        )
    reasons = doc.get("reasons") or []
    verdict = str(doc.get("decision", "deny")).upper()
    target = doc.get("requested")
    if doc.get("version"):
        target = f"{target} -> {doc.get('model')}@{doc.get('version')} {doc.get('artifact_digest')}"
    suffix = f": {', '.join(str(r) for r in reasons)}" if reasons else ""
    lines.append(f"{verdict} {target}{suffix} in {doc.get('latency_ms')} ms")
    return lines


def emit_decision(doc: dict[str, Any], *, as_json: bool) -> None:
    """The decision as ``--json`` asks: the document on stdout, else the summary on stderr."""
    if as_json:
        emit_json(doc)
        return
    for line in summary(doc):
        sys.stderr.write(line + "\n")
    sys.stderr.flush()
