"""``trustload registry ...``: the service (registry_server) and governance (registry_admin)."""

from __future__ import annotations

from importlib import import_module

import typer

registry_app = typer.Typer(help="Run or govern the model Registry.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    for name in ("registry_server", "registry_admin"):
        try:
            module = import_module(f"trustload.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"trustload.cli.{name}":
                raise
            continue
        module.register(registry_app)
    app.add_typer(registry_app, name="registry")
