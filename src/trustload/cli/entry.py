"""The ``trustload`` console script.

``verify-files`` runs in CI pipelines on every model, so its start-up time is part of
every verification (bench/hash_verify.py). It is dispatched to an argparse front end
(:func:`trustload.cli.verify_files.fast_main`, same options, output and exit status)
before typer and pydantic are imported; every other command goes through the typer
application in :mod:`trustload.cli.main`.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["verify-files"]:
        from trustload.cli.verify_files import fast_main

        sys.exit(fast_main(argv[1:]))
    from trustload.cli.main import main as typer_main

    typer_main()


if __name__ == "__main__":  # pragma: no cover
    main()
