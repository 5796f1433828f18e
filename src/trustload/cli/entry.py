"""The ``trustload`` console script.

``verify-files`` runs in CI pipelines on every model, ``verify-image`` on every image
an admission path lets through and ``verify`` on every cold pull, so their start-up time
is part of every verification (bench/hash_verify.py, bench/cli_startup.py,
bench/pull.py). They are fast commands
(:mod:`trustload.cli.fast`): dispatched to their argparse front ends (same options,
output and exit status) before typer, pydantic and rich are imported. Every other
command goes through the typer application in :mod:`trustload.cli.main`.
"""

from __future__ import annotations

import sys
from importlib import import_module

# command -> the module whose ``fast_main(argv) -> int`` runs it without typer
FAST_COMMANDS = {
    "verify-files": "trustload.cli.verify_files",
    "verify-image": "trustload.cli.verify_image",
    "verify": "trustload.cli.verify",
}


def main() -> None:
    argv = sys.argv[1:]
    fast = FAST_COMMANDS.get(argv[0]) if argv else None
    if fast is not None:
        sys.exit(import_module(fast).fast_main(argv[1:]))
    from trustload.cli.main import main as typer_main

    typer_main()


if __name__ == "__main__":  # pragma: no cover
    main()
