"""``trustload verify N@REF --config gate.toml [--json]``: the whole start-up gate,
without serving.

Downloads by digest into the cache, runs every check and the policy, appends one
audit line, and exits 0 on permit, 1 on deny (the decision says why), 2 on a usage or
configuration error. With ``--json`` exactly one decision document goes to stdout;
otherwise a readable summary goes to stderr. Heavy modules load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


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


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        ref: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME@VERSION.")],
        config: Annotated[Path, typer.Option("--config", help="gate.toml")],
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    ) -> None:
        """Run the start-up gate against the Registry; exit 0 permit, 1 deny, 2 usage."""
        from trustload.config import load_client_config
        from trustload.facts import ModelRef
        from trustload.gate import run_gate

        cfg = load_client_config(config)
        result = run_gate(cfg, ModelRef.parse(ref))
        doc = result.decision.to_json()
        if as_json:
            from trustload.cli.jsonout import emit_json

            emit_json(doc)
        else:
            for line in summary(doc):
                typer.echo(line, err=True)
        if not result.decision.permitted:
            raise SystemExit(1)
