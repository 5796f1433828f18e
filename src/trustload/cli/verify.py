"""``trustload verify N@REF --config gate.toml [--json]``: the whole start-up gate,
without serving.

Downloads by digest into the cache, runs every check and the policy, appends one
audit line, and exits 0 on permit, 1 on deny (the decision says why), 2 on a usage or
configuration error. With ``--json`` exactly one decision document goes to stdout;
otherwise a readable summary goes to stderr. Heavy modules load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        ref: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME@VERSION.")],
        config: Annotated[Path, typer.Option("--config", help="gate.toml")],
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    ) -> None:
        """Run the start-up gate against the Registry; exit 0 permit, 1 deny, 2 usage."""
        from trustload.cli.jsonout import emit_decision
        from trustload.config import load_client_config
        from trustload.facts import ModelRef
        from trustload.gate import run_gate

        cfg = load_client_config(config)
        result = run_gate(cfg, ModelRef.parse(ref))
        emit_decision(result.decision.to_json(), as_json=as_json)
        if not result.decision.permitted:
            raise SystemExit(1)
