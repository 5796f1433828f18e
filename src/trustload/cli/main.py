"""Entry point: assembles the command groups and owns the exit-status contract.

Exit status (INTERFACE.md): 0 permitted / succeeded, 1 denied, 2 usage or
configuration error. Heavy libraries are imported inside commands, never at module
import, so ``trustload --help`` and a verification start fast.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from trustload.cli import register_commands
from trustload.errors import TrustloadError, UsageError

app = typer.Typer(
    name="trustload",
    help="Load a model only when it is authentic, intact, permitted and compliant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich renderer costs ~0.2 s of imports on every --help
    # and usage error, for boxes around the same text.
    rich_markup_mode=None,
)

# Each module exposes ``register(app: typer.Typer) -> None``.
COMMAND_MODULES = (
    "keys",  # keys generate
    "sign",  # sign, attest
    "image_sign",  # sign-image, attest-image
    "verify_files",  # verify-files
    "policy",  # policy digest
    "devenv",  # dev-env
    "token",  # token
    "registry",  # registry serve|stage|alias|revoke|quarantine|release
    "publish",  # publish
    "verify",  # verify
    "verify_image",  # verify-image
    "fetch",  # fetch (the KServe storage initializer)
    "serve",  # serve
    "audit",  # audit verify
    "conformance",  # conformance
)

register_commands(app, COMMAND_MODULES)


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("TRUSTLOAD_LOG_LEVEL", "WARNING").upper(),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        # With standalone_mode=False click *returns* a ``typer.Exit`` code instead of
        # exiting; honour it so ``raise typer.Exit(1)`` means exit status 1.
        result = app(standalone_mode=False)
        if isinstance(result, int) and not isinstance(result, bool):
            sys.exit(result)
    except SystemExit:
        raise
    except UsageError as exc:
        typer.echo(f"trustload: error: {exc}", err=True)
        sys.exit(2)
    except TrustloadError as exc:
        typer.echo(f"trustload: denied: {exc}", err=True)
        sys.exit(1)
    except typer.Abort:
        sys.exit(2)
    except Exception as exc:  # click usage errors and the unexpected
        # typer >= 0.29 vendors click as ``typer._click``; older ones use ``click``.
        # Both expose the same shape: ``Exit`` carries ``exit_code``, usage errors
        # are ``ClickException`` subclasses with ``show()`` and ``exit_code == 2``.
        kind = type(exc).__name__
        if kind == "Exit" and isinstance(getattr(exc, "exit_code", None), int):
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        show = getattr(exc, "show", None)
        if callable(show) and any(c.__name__ == "ClickException" for c in type(exc).__mro__):
            show()
            sys.exit(2)
        if os.environ.get("TRUSTLOAD_DEBUG"):
            raise
        # Fail closed: an unexpected error is never a pass.
        typer.echo(f"trustload: internal error ({type(exc).__name__}): {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
