"""A symlink or special file inside a signed directory model is hostile evidence:
``verify-files`` denies it with a reason code (exit 1), never a usage error (exit 2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trustload.decision import ReasonCode
from trustload.engine import verify_files
from trustload.errors import UsageError


def _copy(signed, tmp_path: Path) -> Path:
    target = tmp_path / "dirmodel"
    shutil.copytree(signed.directory, target)
    return target


def test_symlink_escaping_the_model_is_denied(signed, tmp_path: Path) -> None:
    model = _copy(signed, tmp_path)
    (model / "escape").symlink_to("/etc/passwd")
    decision = verify_files(model, signature=signed.dir_signature, public_keys=[signed.pub])
    assert not decision.permitted
    assert decision.reasons == [ReasonCode.SIGNATURE_INVALID]
    assert "symlink" in decision.checks[0].detail


def test_fifo_inside_the_model_is_denied_without_blocking(signed, tmp_path: Path) -> None:
    model = _copy(signed, tmp_path)
    os.mkfifo(model / "pipe")
    decision = verify_files(model, signature=signed.dir_signature, public_keys=[signed.pub])
    assert decision.reasons == [ReasonCode.SIGNATURE_INVALID]


def test_missing_model_stays_a_usage_error(signed, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        verify_files(tmp_path / "absent", signature=signed.dir_signature, public_keys=[signed.pub])


def test_cli_exit_status_is_denial(signed, tmp_path: Path) -> None:
    model = _copy(signed, tmp_path)
    (model / "escape").symlink_to("../../outside")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trustload.cli.verify_files",
            str(model),
            "--signature",
            str(signed.dir_signature),
            "--key",
            str(signed.pub),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    assert '"SIGNATURE_INVALID"' in out.stdout
