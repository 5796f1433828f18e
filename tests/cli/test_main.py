"""The exit-status contract owned by ``trustload.cli.main`` (INTERFACE.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

_SCRIPT = """
import sys, typer
from trustload.cli import main as m
from trustload.decision import ReasonCode
from trustload.errors import TrustloadError, UsageError

@m.app.command("zz-probe")
def probe(kind: str) -> None:
    if kind == "exit3":
        raise typer.Exit(3)
    if kind == "usage":
        raise UsageError("bad flag combination")
    if kind == "deny":
        raise TrustloadError(ReasonCode.REVOKED, "revoked")
    if kind == "boom":
        raise RuntimeError("unexpected")

sys.argv = ["trustload", "zz-probe", sys.argv[1]]
m.main()
"""


@pytest.mark.parametrize(
    ("kind", "status", "stderr_has"),
    [
        ("ok", 0, ""),
        ("exit3", 3, ""),
        ("usage", 2, "bad flag combination"),
        ("deny", 1, "REVOKED"),
        ("boom", 1, "internal error"),  # fail closed: never 0, never a traceback
    ],
)
def test_exit_status_contract(kind: str, status: int, stderr_has: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, kind], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == status, out.stderr
    assert stderr_has in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_option_is_usage_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "trustload.cli.main", "sign", "--no-such-flag"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "No such option" in out.stderr


def test_console_script_sends_verify_files_to_the_lean_front_end() -> None:
    """``trustload verify-files`` must not pay typer's start-up (bench/hash_verify.py)."""
    code = (
        "import sys\n"
        "sys.argv = ['trustload', 'verify-files', '--no-such-flag']\n"
        "import trustload.cli.entry as entry\n"
        "try:\n"
        "    entry.main()\n"
        "except SystemExit as stop:\n"
        "    print(stop.code, 'typer' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["2", "False"], out.stderr
