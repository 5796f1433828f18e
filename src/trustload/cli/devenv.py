"""``trustload dev-env DIR``: a self-contained local environment (see trustload.devenv)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def dev_env(
    directory: Annotated[Path, typer.Argument(help="Directory to create (absent or empty).")],
    port: Annotated[
        int | None, typer.Option("--port", help="Registry port (default: a free one now).")
    ] = None,
) -> None:
    """Make a private CA, certificates, a dev OIDC issuer, a signing key pair, a policy
    bundle and ready configs (registry.toml, admin.toml, gate.toml) inside DIR."""
    from trustload.devenv import describe, make_dev_env

    paths = make_dev_env(directory, port=port)
    typer.echo(describe(paths))


def register(app: typer.Typer) -> None:
    app.command("dev-env")(dev_env)
