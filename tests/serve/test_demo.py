"""`make demo` (python -m trustload.demo) runs green and leaves no process behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_demo_runs_green(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    res = subprocess.run(
        [sys.executable, "-m", "trustload.demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TRUSTLOAD_DEMO_DIR": str(keep)},
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    out = res.stdout
    for expected in ("DIGEST_MISMATCH", "rollback_execute", "hash chain intact", "demo finished"):
        assert expected in out
    if shutil.which("docker-registry"):  # R2.5: the serving image's cosign signature
        assert "ok image_signature: sha256:" in out
        assert "exit 1, IMAGE_SIGNATURE_INVALID" in out
        # Issue 10: one version published through the OCI registry, and gated over it.
        assert "published through the OCI registry" in out
        assert "gate over OCI: exit 0" in out
    # Every process the demo started was stopped: their pids are gone.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(keep) not in ps
