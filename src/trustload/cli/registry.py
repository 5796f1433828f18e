"""``trustload registry ...``: the service (registry_server) and governance (registry_admin)."""

from __future__ import annotations

import typer

from trustload.cli import register_commands

registry_app = typer.Typer(help="Run or govern the model Registry.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    register_commands(registry_app, ("registry_server", "registry_admin"))
    app.add_typer(registry_app, name="registry")
