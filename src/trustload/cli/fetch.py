"""``trustload fetch SRC DEST [SRC DEST ...]``: the KServe storage initializer.

Exit 0 permit (the verified tree is in every DEST), 1 deny (every DEST empty), 2 usage
or configuration error. The decision JSON goes to stdout (one document for one pair, a
JSON array for several); a summary of at most 4 KiB goes to the termination log. The
configuration comes from ``$TRUSTLOAD_CONFIG`` only: nothing secret is ever in argv.
"""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command(
        "fetch",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": False},
    )
    def fetch(
        args: Annotated[
            list[str] | None,
            typer.Argument(help="Pairs SRC DEST; SRC is trustload://NAME@REF.", metavar="SRC DEST"),
        ] = None,
    ) -> None:
        """KServe storage initializer: gate, then write the verified files under DEST."""
        from trustload.cli.jsonout import emit_json
        from trustload.config import load_client_config
        from trustload.errors import UsageError
        from trustload.fetch import (
            config_path,
            parse_pairs,
            run_fetch,
            summary,
            write_termination_log,
        )

        try:
            pairs = parse_pairs(list(args or []))
            decisions = run_fetch(load_client_config(config_path()), pairs)
        except UsageError as exc:
            write_termination_log(summary([], error=str(exc)))
            raise
        except Exception as exc:  # reported, then main() fails closed (exit 1)
            write_termination_log(summary([], error=f"internal error ({type(exc).__name__})"))
            raise
        docs = [d.to_json() for d in decisions]
        emit_json(docs[0] if len(docs) == 1 else docs)
        write_termination_log(summary(decisions))
        if not all(d.permitted for d in decisions):
            raise SystemExit(1)
