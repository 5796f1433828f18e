"""Cold pull: ``trustload verify`` (download by digest + every check) vs ``curl`` alone.

A 1 GiB single-file model is published to a real Registry on 127.0.0.1 (mTLS + OIDC).
Measured in the same run, over the same mTLS channel and the same blob:

* trustload: ``trustload verify NAME@production --config gate.toml --json`` with an
  empty cache (download hashed while streaming, then signature, attestation, policy);
* baseline:  ``curl`` of the blob with the gate's client certificate and a token,
  written to disk, nothing else: no hash, no check. That is the floor a verifying
  download can approach (it cannot beat the bytes arriving); the bytes curl wrote are
  compared with the pinned digest *after* its clock stopped, so the baseline stays
  honest without paying for a hash.

Prints the median of each and the ratio trustload / curl (target <= 1.1, issue 10,
"One pass over the bytes"). Usage:
``python bench/pull.py [--size-mib 1024] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.registry import make_test_env, start_registry  # noqa: E402

from trustload.cli.publish import publish_model  # noqa: E402
from trustload.client.api import RegistryClient  # noqa: E402
from trustload.config import load_client_config  # noqa: E402
from trustload.oidc import mint_token  # noqa: E402


def write_model(path: Path, size: int) -> str:
    """Random (incompressible) bytes, written in 16 MiB pieces; returns the hex digest."""
    h = hashlib.sha256()
    block = 16 * 1024 * 1024
    with path.open("wb") as fh:
        left = size
        while left:
            piece = os.urandom(min(block, left))
            fh.write(piece)
            h.update(piece)
            left -= len(piece)
    return h.hexdigest()


def child_cpu() -> float:
    """User + system CPU seconds of every waited-for child so far (this process only)."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def timed_verify(cmd: list[str]) -> tuple[float, float, dict[str, object]]:
    """Wall seconds, CPU seconds (less sensitive to a loaded box) and the decision."""
    start, cpu = time.perf_counter(), child_cpu()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    return elapsed, child_cpu() - cpu, json.loads(done.stdout)


def runs(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    size = args.size_mib * 1024 * 1024

    tmp = Path(tempfile.mkdtemp(prefix="tl-pull-"))
    try:
        env = make_test_env(tmp / "env")
        model = tmp / "model.onnx"
        print(f"writing a {args.size_mib} MiB model ...", file=sys.stderr)
        hexdigest = write_model(model, size)
        with start_registry(env) as reg:
            admin_cfg = load_client_config(env.admin_config)
            print("publishing (sign, attest, upload) ...", file=sys.stderr)
            publish_model(
                admin_cfg,
                model,
                name="big",
                version="1",
                key=env.signing_key,
                git_sha="1" * 40,
                container_digest="sha256:" + "c" * 64,
                dataset_snapshot="ds-bench",
            )
            with RegistryClient(admin_cfg.registry) as admin:
                admin.set_stage("big", "1", "Approved")
                admin.set_alias("big", "production", "1")
            model.unlink()

            gate_cfg = load_client_config(env.gate_config)
            cert, key = env.cert_paths("gate")
            trustload = [
                sys.executable,
                "-m",
                "trustload.cli.entry",  # the `trustload` console script
                "verify",
                "big@production",
                "--config",
                str(env.gate_config),
                "--json",
            ]
            out = tmp / "curl.bin"
            ours: list[float] = []
            base: list[float] = []
            ours_cpu: list[float] = []
            base_cpu: list[float] = []

            def run_ours() -> dict[str, object]:
                shutil.rmtree(gate_cfg.gate.cache_dir, ignore_errors=True)
                shutil.rmtree(gate_cfg.gate.state_dir, ignore_errors=True)
                elapsed, cpu, decision = timed_verify(trustload)
                assert decision["decision"] == "permit", decision
                ours.append(elapsed)
                ours_cpu.append(cpu)
                return decision

            def run_base() -> None:
                token = mint_token(
                    env.issuer,
                    sub="bench",
                    tenant="A",
                    purposes=["credit_scoring"],
                    domain="credit",
                    role="consumer",
                    ttl=300,
                )
                out.unlink(missing_ok=True)
                start, cpu = time.perf_counter(), child_cpu()
                subprocess.run(
                    [
                        "curl",
                        "-sS",
                        "--fail",
                        "--cacert",
                        str(env.ca),
                        "--cert",
                        str(cert),
                        "--key",
                        str(key),
                        "--tlsv1.2",
                        "-H",
                        f"Authorization: Bearer {token}",
                        "-o",
                        str(out),
                        f"{reg.url}/v1/blobs/sha256/{hexdigest}",
                    ],
                    check=True,
                )
                base.append(time.perf_counter() - start)  # the clock stops before the check
                base_cpu.append(child_cpu() - cpu)
                got = subprocess.run(
                    ["sha256sum", str(out)], check=True, capture_output=True, text=True
                ).stdout.split()[0]
                assert got == hexdigest, "curl fetched different bytes"
                out.unlink()

            load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            for i in range(args.rounds):
                # Alternate which goes first, so neither always gets the warmer machine.
                if i % 2 == 0:
                    decision = run_ours()
                    run_base()
                else:
                    run_base()
                    decision = run_ours()

        t_ours, t_base = statistics.median(ours), statistics.median(base)
        steps = ", ".join(f"{c['name']} {c['ms']:.0f}" for c in decision["checks"])  # type: ignore[index, union-attr]
        print(f"last verify, per check (ms): {steps}; gate total {decision['latency_ms']:.0f} ms")
        print(f"model size                 : {args.size_mib} MiB")
        # Both sides share the machine's cores with the Registry (and whatever else runs):
        # a loaded machine hurts the side that needs more CPU (its SHA-256 pass) most.
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average (1/5/15 min)  : {load} (before the runs: {load_before})")
        print(f"trustload verify (cold)    : {t_ours:.2f} s  (runs: {runs(ours)})")
        print(f"curl alone (baseline)      : {t_base:.2f} s  (runs: {runs(base)})")
        cpu_ours, cpu_base = statistics.median(ours_cpu), statistics.median(base_cpu)
        print(f"CPU s, verify / curl       : {cpu_ours:.2f} / {cpu_base:.2f}  (user+sys, medians)")
        pairs = [o / b for o, b in zip(ours, base, strict=True)]
        print(f"per-round ratios           : {runs(pairs)}")
        print(f"ratio cold verify / curl   : {t_ours / t_base:.2f}  (medians; target <= 1.1)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
