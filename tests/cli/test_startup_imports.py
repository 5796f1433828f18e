"""What the ``trustload`` entry point imports before a command runs (start-up cost).

The server stacks (fastapi, starlette, uvicorn, sqlalchemy) belong to ``serve`` and
``registry serve`` only; ``--help`` never needs them. The fast commands (``verify-files``,
``verify-image``, ``verify``) run without typer, pydantic and rich, through either door (the console
script's dispatch, or the typer application forwarding to them). Checked on
``sys.modules`` in a fresh interpreter; speed itself is measured in bench/cli_startup.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.interop import interop_dir

SERVER_STACK = ("fastapi", "starlette", "uvicorn", "sqlalchemy")
CLI_STACK = ("typer", "pydantic", "rich")
WATCHED = SERVER_STACK + CLI_STACK + ("regopy", "sigstore", "httpx")

_PROBE = """
import contextlib, io, json, sys
watched = json.loads(sys.argv[2])
sys.argv = ["trustload", *json.loads(sys.argv[1])]
from trustload.cli.entry import main
out = io.StringIO()
code = None
try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        main()
except SystemExit as exc:
    code = exc.code
loaded = [m for m in watched if m in sys.modules]
print(json.dumps({"code": code, "loaded": loaded, "out": out.getvalue()}))
"""

LAYOUT = interop_dir() / "containers-image"
KEY_VALID = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"


def _run(*argv: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv), json.dumps(WATCHED)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_help_loads_no_server_stack_and_no_rich() -> None:
    run = _run("--help")
    assert run["code"] == 0 and "verify-image" in str(run["out"])  # the real help text
    loaded = set(run["loaded"])  # type: ignore[arg-type]
    assert "typer" in loaded  # the probe sees imports: the typer app did run
    assert not loaded & set(SERVER_STACK), loaded
    assert "rich" not in loaded and "pydantic" not in loaded


@pytest.mark.parametrize("command", ["serve", "registry", "fetch", "publish"])
def test_command_help_loads_no_server_stack(command: str) -> None:
    run = _run(command, "--help")
    assert run["code"] == 0 and "Usage:" in str(run["out"])
    assert not set(run["loaded"]) & set(SERVER_STACK), run["loaded"]  # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["verify-files", "verify-image", "verify"])
def test_fast_commands_start_without_typer(command: str) -> None:
    run = _run(command, "--help")
    assert run["code"] == 0 and f"usage: trustload {command}" in str(run["out"])
    assert run["loaded"] == [], run["loaded"]
    bad = _run(command, "--frobnicate")  # a usage error is still exit 2, still no typer
    assert bad["code"] == 2 and f"trustload {command}: error: " in str(bad["out"])
    assert bad["loaded"] == []


def test_verify_image_of_a_cosign_layout_loads_only_what_it_needs() -> None:
    ref = f"oci-layout:{LAYOUT / 'layouts' / 'key-valid'}@{KEY_VALID}"
    run = _run("verify-image", ref, "--key", str(LAYOUT / "trust" / "cosign.pub"))
    assert run["code"] == 0 and "PERMIT" in str(run["out"])
    assert run["loaded"] == [], run["loaded"]
    wrong = _run("verify-image", ref, "--key", str(LAYOUT / "trust" / "cosign2.pub"))
    assert wrong["code"] == 1 and "IMAGE_SIGNATURE_INVALID" in str(wrong["out"])


def test_typer_door_forwards_to_the_fast_command() -> None:
    """``python -m trustload.cli.main verify-image`` runs the same argparse command."""
    done = subprocess.run(
        [sys.executable, "-m", "trustload.cli.main", "verify-image", "--frobnicate", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "trustload verify-image: error: unrecognized arguments: --frobnicate" in done.stderr
