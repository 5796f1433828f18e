"""``trustload audit verify FILE``: check the audit log's hash chain (R7).

Exit 0 when every line links to the one before it (and to the sidecar head when
there is one), listing any crash recoveries (``audit_recovered``) and re-created heads
on record; exit 1 naming the first line that was edited, removed or reordered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trustload.errors import UsageError


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Inspect the tamper-evident audit log.", no_args_is_help=True)

    @group.command("verify")
    def verify(
        file: Annotated[Path, typer.Argument(help="The audit log (JSON Lines).")],
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    ) -> None:
        """Check the hash chain; exit 1 names the first bad line."""
        from trustload.audit import verify_chain
        from trustload.cli.jsonout import emit_json

        if not file.is_file():
            raise UsageError(f"no such audit log: {file}")
        report = verify_chain(file)
        if as_json:
            emit_json(
                {
                    "ok": report.ok,
                    "lines": report.lines,
                    "first_bad_line": report.first_bad_line,
                    "problem": report.problem or None,
                    "recovered": list(report.recovered),
                    "heads_recreated": report.heads_recreated,
                }
            )
        elif report.ok:
            typer.echo(f"audit log OK: {report.lines} line(s), hash chain intact")
            for event in report.recovered:
                typer.echo(
                    f"  line {event['line']}: audit_recovered at {event['at']}: a torn final "
                    f"line of {event['torn_bytes']} byte(s) (sha256 {event['torn_sha256']}) "
                    f"was cut off and kept as {event['kept_as']}"
                )
            if report.heads_recreated:
                typer.echo(
                    f"  the head sidecar was re-created {report.heads_recreated} time(s) "
                    "(audit_head_recreated): it had been deleted"
                )
        if not report.ok:
            typer.echo(
                f"audit log TAMPERED: line {report.first_bad_line}: {report.problem}", err=True
            )
            raise SystemExit(1)  # main() drops typer.Exit codes under standalone_mode=False

    app.add_typer(group, name="audit")
