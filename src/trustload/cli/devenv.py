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
    """Make a self-contained local environment (CA, certificates, OIDC issuer, keys,
    policy, configs) inside DIR.

    Writes registry.toml (the Registry), admin.toml (an admin identity of tenant A) and
    gate.toml (a serving identity of tenant A, environment prod), pki/ca.pem, the
    signing key pair signing.key / signing.pub and the policy bundle policy/. Every
    path in the configs is relative to the config file.
    """
    from trustload.devenv import describe, make_dev_env

    paths = make_dev_env(directory, port=port)
    typer.echo(describe(paths))


def register(app: typer.Typer) -> None:
    app.command("dev-env")(dev_env)
