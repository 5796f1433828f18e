"""``trustload registry serve``: the Registry over HTTPS with mTLS and OIDC."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    config: Annotated[Path, typer.Option("--config", help="registry.toml")],
) -> None:
    """Run the Registry on the configured address; print the URL; stop on SIGTERM/SIGINT."""
    from trustload.registry.server import serve as run

    run(config)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
