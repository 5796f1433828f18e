"""``trustload conformance --config gate.toml --admin-config admin.toml [--json]``

The R9 pre-production gate as a command: baseline + chaos, negative, policy drift and
tenant cross against the live Registry with a throw-away canary model (see
:mod:`trustload.conformance`). Exit 0 only if every row passes; 1 otherwise; 2 on a
usage or configuration error. ``--json`` prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer


def default_key(admin_config: Path, publisher: dict[str, Any]) -> Path:
    """``[publisher].key`` of admin.toml, else ``signing.key`` beside it (dev-env)."""
    base = admin_config.resolve().parent
    configured = publisher.get("key")
    if isinstance(configured, str) and configured:
        path = Path(configured)
        return path if path.is_absolute() else base / path
    return base / "signing.key"


def render_table(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"trustload conformance - canary {doc['canary']} on {doc['registry']}")
    for column in ("scenario", "expected", "observed", "result"):
        table.add_column(column)
    for row in doc["results"]:
        verdict = "[green]PASS[/green]" if row["passed"] else "[red]FAIL[/red]"
        observed = row["observed"] + (f"\n{row['detail']}" if row["detail"] else "")
        table.add_row(row["scenario"], row["expected"], observed, verdict)
    console = Console()
    console.print(table)
    for problem in doc["cleanup"]:
        console.print(f"[yellow]clean-up: {problem}[/yellow]")
    console.print("[green]all scenarios passed[/green]" if doc["passed"] else "[red]FAILED[/red]")


def register(app: typer.Typer) -> None:
    @app.command("conformance")
    def conformance(
        config: Annotated[Path, typer.Option("--config", help="gate.toml (the deployment)")],
        admin_config: Annotated[
            Path, typer.Option("--admin-config", help="admin.toml (publishes the canary)")
        ],
        key: Annotated[
            Path | None,
            typer.Option(
                "--key",
                help="Signing key the gate trusts (default: [publisher].key of admin.toml, "
                "else signing.key beside it).",
            ),
        ] = None,
        cross_tenant_token_file: Annotated[
            Path | None,
            typer.Option(
                "--cross-tenant-token-file",
                help="A token of another tenant (needed when the gate has no dev issuer).",
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    ) -> None:
        """Run the R9 conformance tests with a canary model; exit 0 only if all pass."""
        from trustload.config import load_client_config
        from trustload.conformance import run_conformance

        gate_cfg = load_client_config(config)
        admin_cfg = load_client_config(admin_config)
        password = os.environ.get("TRUSTLOAD_KEY_PASSWORD")
        report = run_conformance(
            gate_cfg,
            admin_cfg,
            key=key or default_key(admin_config, admin_cfg.publisher),
            password=password.encode() if password else None,
            cross_tenant_token_file=cross_tenant_token_file,
            progress=lambda msg: typer.echo(f"conformance: {msg}", err=True),
        )
        doc = report.to_json()
        if as_json:
            from trustload.cli.jsonout import emit_json

            emit_json(doc)
        else:
            render_table(doc)
        if not report.passed:
            raise SystemExit(1)
