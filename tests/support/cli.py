"""Run the ``trustload`` command line as a user does: a real child process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

# Variables that would change what a command does: a debug traceback instead of the exit
# status contract, a key password nobody typed.
_CLEARED = ("TRUSTLOAD_DEBUG", "TRUSTLOAD_KEY_PASSWORD")


def run_cli(
    *args: object, cwd: Path | None = None, timeout: float = 120, keep: Iterable[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``python -m trustload.cli.main ARGS`` (the typer application), output captured.
    ``keep`` names variables of ``_CLEARED`` the caller sets on purpose."""
    cleared = set(_CLEARED) - set(keep)
    env = {k: v for k, v in os.environ.items() if k not in cleared}
    return subprocess.run(
        [sys.executable, "-m", "trustload.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )
