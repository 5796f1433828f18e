"""Fleet start-up: N gates verify the same model against one Registry at once.

Each gate is its own "pod": its own mTLS client, token, cache, state and audit log
(nothing shared but the Registry). All start together behind a barrier, in threads of
one process (bounded: exactly N threads, each gate one attempt, a global timeout).
All must permit. Prints p50 / p99 decision latency and the Registry requests per
second the fleet generated. Usage: ``python bench/fleet.py [--gates 50] [--size-mib 20]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.registry import make_test_env, start_registry  # noqa: E402

from trustload.cli.publish import publish_model  # noqa: E402
from trustload.client.api import RegistryClient  # noqa: E402
from trustload.config import ClientFileConfig, load_client_config  # noqa: E402
from trustload.gate import run_gate  # noqa: E402

TIMEOUT = 300.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def gate_config(base: ClientFileConfig, root: Path) -> ClientFileConfig:
    gate = base.gate.model_copy(
        update={
            "cache_dir": root / "cache",
            "state_dir": root / "state",
            "audit_log": root / "audit.jsonl",
        }
    )
    return base.model_copy(update={"gate": gate})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gates", type=int, default=50)
    ap.add_argument("--size-mib", type=int, default=20)
    args = ap.parse_args()
    if not 1 <= args.gates <= 200:
        raise SystemExit("--gates must be in 1..200")

    tmp = Path(tempfile.mkdtemp(prefix="tl-fleet-"))
    try:
        env = make_test_env(tmp / "env")
        model = tmp / "model.onnx"
        model.write_bytes(os.urandom(args.size_mib * 1024 * 1024))
        with start_registry(env) as _reg:
            admin_cfg = load_client_config(env.admin_config)
            publish_model(
                admin_cfg,
                model,
                name="fleet",
                version="1",
                key=env.signing_key,
                git_sha="1" * 40,
                container_digest="sha256:" + "c" * 64,
                dataset_snapshot="ds-bench",
            )
            with RegistryClient(admin_cfg.registry) as admin:
                admin.set_stage("fleet", "1", "Approved")
                admin.set_alias("fleet", "production", "1")

            base = load_client_config(env.gate_config)
            configs = [gate_config(base, tmp / "gates" / str(i)) for i in range(args.gates)]
            # Warm the process once (imports, policy compile), as a running pod would be.
            warm = run_gate(gate_config(base, tmp / "warm"), "fleet@production")
            assert warm.decision.permitted, warm.decision.to_json()

            barrier = threading.Barrier(args.gates)
            latencies: list[float] = []
            requests: list[int] = []
            failures: list[str] = []
            lock = threading.Lock()

            def one(cfg: ClientFileConfig) -> None:
                client = RegistryClient(cfg.registry)
                barrier.wait(TIMEOUT)
                start = time.perf_counter()
                try:
                    result = run_gate(cfg, "fleet@production", client=client)
                finally:
                    client.close()
                elapsed = (time.perf_counter() - start) * 1000.0
                with lock:
                    latencies.append(elapsed)
                    requests.append(client.transport.requests_sent)
                    if not result.decision.permitted:
                        failures.append(",".join(str(r) for r in result.decision.reasons))

            wall_start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.gates) as pool:
                futures = [pool.submit(one, cfg) for cfg in configs]
                for fut in futures:
                    fut.result(timeout=TIMEOUT)
            wall = time.perf_counter() - wall_start

        total_requests = sum(requests)
        print(
            f"gates                      : {args.gates} "
            f"(threads, one Registry, {args.size_mib} MiB model)"
        )
        print(f"permitted                  : {args.gates - len(failures)} / {args.gates}")
        print(
            f"decision latency p50 / p99 : {statistics.median(latencies):.0f} ms / "
            f"{percentile(latencies, 0.99):.0f} ms"
        )
        print(f"wall time                  : {wall:.2f} s")
        print(
            f"registry requests          : {total_requests} "
            f"({total_requests / wall:.1f} requests/s, "
            f"{args.gates * args.size_mib / wall:.0f} MiB/s served)"
        )
        if failures:
            raise SystemExit(f"{len(failures)} gates denied: {sorted(set(failures))}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
