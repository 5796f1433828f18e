"""``trustload publish PATH --oci`` and ``trustload publish oci://...`` as a user runs
them (real processes), then ``trustload verify`` over OCI: exit codes and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.gate.conftest import CONTAINER, DATASET, GIT_SHA
from tests.ocimodels.conftest import REPO, OciWorld, push_unsigned
from tests.support.cli import run_cli as tl


def _with_oci(world: OciWorld, config: Path, name: str) -> Path:
    """A copy of ``config`` with the OCI registry listed in ``[[oci.registries]]``."""
    assert world.oci is not None
    oci = world.oci.toml(world.work / f"{name}.oci.toml").read_text()
    out = config.parent / f"{name}-oci.toml"
    out.write_text(config.read_text() + "\n" + oci)
    return out


PROVENANCE = ("--git-sha", GIT_SHA, "--container-digest", CONTAINER, "--dataset-snapshot", DATASET)


def test_publish_oci_and_import_through_the_cli(oworld: OciWorld) -> None:
    assert oworld.oci is not None
    env = oworld.env
    admin = _with_oci(oworld, env.admin_config, "admin")
    gate = _with_oci(oworld, env.gate_config, "gate")
    pub = tl(
        "publish", oworld.model_dir(), "--name", "risk", "--version", "1", "--config", admin,
        "--key", env.signing_key, "--oci", f"{oworld.oci.host}/{REPO}", *PROVENANCE, "--json",
    )  # fmt: skip
    assert pub.returncode == 0, pub.stderr
    record = json.loads(pub.stdout)
    assert record["artifact_uri"] == f"oci://{oworld.oci.host}/{REPO}@{record['artifact_digest']}"
    oworld.release_to_prod("risk", "1")
    verify = tl("verify", "risk@production", "--config", gate, "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["decision"] == "permit"

    # Import: recorded as pushed (here unsigned), nothing re-signed; the gate denies.
    uri = push_unsigned(oworld)
    imp = tl("publish", uri, "--name", "risk", "--version", "2", "--config", admin, *PROVENANCE)
    assert imp.returncode == 0, imp.stderr
    assert uri in imp.stderr
    oworld.release_to_prod("risk", "2")
    denied = tl("verify", "risk@production", "--config", gate, "--json")
    assert denied.returncode == 1, denied.stdout + denied.stderr
    assert "SIGNATURE_MISSING" in json.loads(denied.stdout)["reasons"]


def test_cli_usage_errors(oworld: OciWorld) -> None:
    env = oworld.env
    model = oworld.model_dir()
    no_key = tl("publish", model, "--name", "r", "--version", "1", "--config", env.admin_config,
                "--oci", "127.0.0.1:1/models/x", *PROVENANCE)  # fmt: skip
    assert no_key.returncode == 2 and "--key is required" in no_key.stderr
    key = ("--key", env.signing_key)
    tagged = tl("publish", model, "--name", "r", "--version", "1", "--config", env.admin_config,
                *key, "--oci", "127.0.0.1:1/models/x:v1", *PROVENANCE)  # fmt: skip
    assert tagged.returncode == 2 and "no tag or digest" in tagged.stderr
    bad_uri = tl("publish", "oci://127.0.0.1:1/models/x:latest", "--name", "r", "--version", "1",
                 "--config", env.admin_config, *PROVENANCE)  # fmt: skip
    assert bad_uri.returncode == 2, bad_uri.stderr


def test_kserve_fetch_of_an_oci_model_writes_the_verified_tree(oworld: OciWorld) -> None:
    """``trustload fetch trustload://NAME@REF DEST`` (the KServe storage initializer) for
    a version whose bytes are in the OCI registry: the same verified, read-only tree."""
    import os
    import subprocess
    import sys

    files = {"model.onnx": os.urandom(40_000), "config.json": b"{}", "docs/README.md": b"#"}
    rec = oworld.publish_oci("risk", "1", oworld.model_dir(files))
    oworld.release_to_prod("risk", "1")
    gate = _with_oci(oworld, oworld.env.gate_config, "gate")
    dest = oworld.work / "mnt" / "models"
    env = {k: v for k, v in os.environ.items() if k != "TRUSTLOAD_DEBUG"}
    env |= {"TRUSTLOAD_CONFIG": str(gate), "TRUSTLOAD_TERMINATION_LOG": str(oworld.work / "t")}
    proc = subprocess.run(
        [sys.executable, "-m", "trustload.cli.main", "fetch", "trustload://risk@production",
         str(dest)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["artifact_digest"] == rec.artifact_digest
    for rel, data in files.items():
        assert (dest / rel).read_bytes() == data
        assert (dest / rel).stat().st_mode & 0o222 == 0  # read-only, as for every model
    assert sorted(os.listdir(dest)) == ["config.json", "docs", "model.onnx"]
