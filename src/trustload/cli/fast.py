"""Typer-free front ends for the commands CI and admission paths run on every model.

Their start-up time is part of every verification: typer builds a pydantic
``TypeAdapter`` for each parameter it coerces (~0.15 s of imports and schema building
before the command body runs) and renders help with rich (~0.2 s more). A fast command
is therefore defined once, as an :mod:`argparse` parser plus a body, and
:mod:`trustload.cli.entry` dispatches to it before typer is imported. The typer
application only forwards the raw arguments (:func:`register_passthrough`), so the
command is listed in ``trustload --help`` and behaves the same through either door.

Exit status as everywhere (INTERFACE.md): 0 permit, 1 deny, 2 usage or configuration.
"""

# No ``from __future__ import annotations``: typer reads the passthrough's parameter
# annotation at registration, and ``typer`` is imported only inside the function.

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

FastMain = Callable[[list[str] | None], int]


class _UsageExit(Exception):
    pass


def run_fast(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int],
    argv: list[str] | None,
) -> int:
    """Parse ``argv`` and run ``body``; map every failure to its exit status, never a
    traceback and never a permit."""
    from trustload.errors import TrustloadError, UsageError

    def usage_error(message: str) -> None:
        sys.stderr.write(f"{parser.prog}: error: {message}\n")
        raise _UsageExit

    parser.error = usage_error  # type: ignore[method-assign,assignment]
    try:
        return body(parser.parse_args(argv))
    except _UsageExit:
        return 2
    except UsageError as exc:
        sys.stderr.write(f"trustload: error: {exc}\n")
        return 2
    except TrustloadError as exc:
        sys.stderr.write(f"trustload: denied: {exc}\n")
        return 1
    except Exception as exc:  # fail closed: never a traceback, never a permit
        sys.stderr.write(f"trustload: internal error ({type(exc).__name__}): {exc}\n")
        return 1


def register_passthrough(
    app: "typer.Typer", name: str, help_text: str, fast_main: FastMain
) -> None:
    """List ``name`` in the typer application and hand its raw arguments (``--help``
    included) to ``fast_main``: one definition of the options, one behaviour."""
    from typer import Context

    @app.command(
        name,
        help=help_text,
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def passthrough(ctx: Context) -> None:
        raise SystemExit(fast_main(list(ctx.args)))
