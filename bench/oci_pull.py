"""Cold gate over OCI: ``trustload verify`` of a model stored in docker-registry vs one
``curl`` of its weights blob from that same registry, measured in the same run.

A model (one weights file of ``--size-mib`` plus a small config) is published with
``publish --oci`` (ModelPack layers, cosign ``.sig`` / ``.att``) to a real Debian
``docker-registry`` on 127.0.0.1 (TLS), recorded in a real Registry (mTLS + OIDC),
approved and aliased. Then, alternating which goes first:

* trustload: ``trustload verify NAME@production --config gate.toml --json`` with an empty
  cache (Registry record, manifest, every layer by digest hashed while downloaded, the
  cosign signature and attestation, every check, the Rego policy), a fresh process;
* baseline:  ``curl`` of the weights blob from the OCI registry to disk (download only,
  no hash).

Prints medians and their ratio. Usage: ``python bench/oci_pull.py [--size-mib 64] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.client.pki import CA  # noqa: E402
from tests.support.ocireg import oci_registry  # noqa: E402
from tests.support.registry import make_test_env, start_registry  # noqa: E402

from trustload.cli.publish import publish_oci_model  # noqa: E402
from trustload.client.api import RegistryClient  # noqa: E402
from trustload.config import load_client_config  # noqa: E402
from trustload.publish_oci import Provenance  # noqa: E402


def _runs(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def _write(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        left = size
        while left:
            piece = os.urandom(min(16 * 1024 * 1024, left))
            fh.write(piece)
            left -= len(piece)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tl-oci-pull-"))
    try:
        env = make_test_env(tmp / "env")
        model = tmp / "model"
        model.mkdir()
        _write(model / "model.onnx", args.size_mib * 1024 * 1024)
        (model / "config.json").write_text('{"bench": true}')
        with start_registry(env) as reg, oci_registry(tmp / "oci", CA(tmp / "pki", "bench")) as oci:
            cfg_text = oci.toml(tmp / "oci.toml").read_text()
            admin_toml = env.admin_config.with_name("admin-oci.toml")  # relative paths hold
            gate_toml = env.gate_config.with_name("gate-oci.toml")
            admin_toml.write_text(env.admin_config.read_text() + "\n" + cfg_text)
            gate_toml.write_text(env.gate_config.read_text() + "\n" + cfg_text)
            admin_cfg = load_client_config(admin_toml)
            rec = publish_oci_model(
                admin_cfg, model, f"{oci.host}/bench/model", name="big", version="1",
                key=env.signing_key,
                provenance=Provenance("1" * 40, "sha256:" + "c" * 64, "ds-bench"),
            )  # fmt: skip
            with RegistryClient(admin_cfg.registry) as admin:
                admin.set_stage("big", "1", "Approved")
                admin.set_alias("big", "production", "1")
            weights = next(f for f in rec.files if f.path == "model.onnx")
            gate_cfg = load_client_config(gate_toml)
            verify = [sys.executable, "-m", "trustload.cli.main", "verify", "big@production",
                      "--config", str(gate_toml), "--json"]  # fmt: skip
            out = tmp / "curl.bin"
            curl = ["curl", "-sS", "--fail", "--cacert", str(oci.ca), "-o", str(out),
                    f"https://{oci.host}/v2/bench/model/blobs/sha256:{weights.sha256}"]  # fmt: skip
            ours: list[float] = []
            base: list[float] = []
            decision: dict[str, object] = {}
            for i in range(args.rounds):
                for which in (("ours", "base") if i % 2 == 0 else ("base", "ours")):
                    if which == "ours":
                        shutil.rmtree(gate_cfg.gate.cache_dir, ignore_errors=True)
                        shutil.rmtree(gate_cfg.gate.state_dir, ignore_errors=True)
                        start = time.perf_counter()
                        done = subprocess.run(verify, check=True, capture_output=True, text=True)
                        ours.append(time.perf_counter() - start)
                        decision = json.loads(done.stdout)
                        assert decision["decision"] == "permit", decision
                    else:
                        out.unlink(missing_ok=True)
                        start = time.perf_counter()
                        subprocess.run(curl, check=True)
                        base.append(time.perf_counter() - start)
                        assert out.stat().st_size == weights.size
            del reg
        steps = ", ".join(f"{c['name']} {c['ms']:.0f}" for c in decision["checks"])  # type: ignore[index, union-attr, attr-defined]
        t_ours, t_base = statistics.median(ours), statistics.median(base)
        print(f"last verify, per check (ms): {steps}")
        print(f"last verify, gate latency  : {decision['latency_ms']:.0f} ms in process")
        print(f"model size                 : {args.size_mib} MiB (+ config.json), 2 layers")
        print(f"trustload verify over OCI  : {t_ours:.2f} s  (runs: {_runs(ours)})")
        print(f"curl of the blob (baseline): {t_base:.2f} s  (runs: {_runs(base)})")
        print(f"ratio trustload / curl     : {t_ours / t_base:.2f}  (medians)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
