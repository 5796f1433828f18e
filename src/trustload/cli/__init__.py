"""The ``trustload`` command line: one module per command group, thin over the core."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer


def register_commands(app: typer.Typer, modules: Iterable[str]) -> None:
    """Let each ``trustload.cli.<module>`` add its commands (``register(app)``) to ``app``.
    A command module absent from this build is skipped; any other import error is raised."""
    for name in modules:
        try:
            module = import_module(f"trustload.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"trustload.cli.{name}":
                raise
            continue
        module.register(app)
