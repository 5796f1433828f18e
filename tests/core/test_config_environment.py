"""[gate] environment is validated where gate config loads (INTERFACE.md, "Rules that
close known attacks"): an unknown name without ``allowed_stages`` is a configuration
error, exit 2, for every command that reads a gate config."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from trustload.config import load_client_config
from trustload.errors import UsageError

BASE = """
[registry]
url = "https://127.0.0.1:9"
ca = "ca.pem"
client_cert = "c.pem"
client_key = "c.key"

[gate]
{gate}
"""


def _config(tmp_path: Path, gate: str) -> Path:
    path = tmp_path / "gate.toml"
    path.write_text(BASE.format(gate=gate))
    return path


@pytest.mark.parametrize("env", ["prd", "production-eu", "produtcion", "Prod-EU", "staging2"])
def test_unknown_environment_is_a_config_error(tmp_path: Path, env: str) -> None:
    with pytest.raises(UsageError, match="allowed_stages"):
        load_client_config(_config(tmp_path, f'environment = "{env}"'))


@pytest.mark.parametrize(
    ("gate", "stages"),
    [
        ('environment = "prod"', ("Approved",)),
        ('environment = "qa"', ("Staging", "Approved")),
        ('environment = "prd"\nallowed_stages = ["Approved"]', ("Approved",)),
        (
            'environment = "production-eu"\nallowed_stages = ["Staging", "Approved"]',
            ("Staging", "Approved"),
        ),
    ],
)
def test_known_or_explicit_environment_loads(tmp_path: Path, gate: str, stages: tuple) -> None:
    assert load_client_config(_config(tmp_path, gate)).gate.stages() == stages


def test_unknown_stage_in_allowed_stages_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown stage"):
        load_client_config(_config(tmp_path, 'environment = "prd"\nallowed_stages = ["Live"]'))


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "risk@production"],
        ["serve", "--model", "risk@production"],
        ["conformance", "--admin-config", "{config}"],
    ],
)
def test_every_command_refuses_an_unknown_environment(tmp_path: Path, argv: list[str]) -> None:
    """``verify``, ``serve`` and ``conformance`` exit 2 with a clear message, before any
    network contact (the Registry URL here is unreachable)."""
    config = _config(tmp_path, 'environment = "prd"')
    args = [a.replace("{config}", str(config)) for a in argv]
    out = subprocess.run(
        [sys.executable, "-m", "trustload.cli.main", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert re.search(r"environment 'prd' is not a known name", out.stderr), out.stderr
    assert "Traceback" not in out.stderr
