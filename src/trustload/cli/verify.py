"""``trustload verify N@REF --config gate.toml [--json]``: the whole start-up gate,
without serving.

Downloads by digest into the cache, runs every check and the policy, appends one
audit line, and exits 0 on permit, 1 on deny (the decision says why), 2 on a usage or
configuration error. With ``--json`` exactly one decision document goes to stdout;
otherwise a readable summary goes to stderr. Heavy modules load inside the command.

A fast command (:mod:`trustload.cli.fast`): a cold ``verify`` is benchmarked against
one ``curl`` of the model (bench/pull.py, issue 10), and typer's start-up (~0.15 s of
imports and schema building) is part of every verification.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from trustload.cli.fast import register_passthrough, run_fast

if TYPE_CHECKING:
    import typer

HELP = "Run the start-up gate against the Registry; exit 0 permit, 1 deny, 2 usage."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trustload verify", description=HELP)
    parser.add_argument("ref", help="NAME@ALIAS or NAME@VERSION.")
    parser.add_argument("--config", type=Path, required=True, help="gate.toml")
    parser.add_argument(
        "--json", dest="as_json", action="store_true", help="Print one JSON document."
    )
    return parser


def _verify(ns: argparse.Namespace) -> int:
    from trustload.cli.jsonout import emit_decision
    from trustload.config import load_client_config
    from trustload.facts import ModelRef
    from trustload.gate import run_gate

    cfg = load_client_config(ns.config)
    result = run_gate(cfg, ModelRef.parse(ns.ref))
    emit_decision(result.decision.to_json(), as_json=ns.as_json)
    return 0 if result.decision.permitted else 1


def fast_main(argv: list[str] | None = None) -> int:
    """``verify`` without typer: the only definition of the command, typer forwards."""
    return run_fast(_parser(), _verify, argv)


def register(app: typer.Typer) -> None:
    register_passthrough(app, "verify", HELP, fast_main)
