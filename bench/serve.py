"""OIP v2 serving: request throughput and p99 latency, JSON against binary tensors.

The same signed ONNX scorer (``x: FP32 [N, D] -> score``) for D = 4 and D = 65536 is served
by a real ``trustload serve`` process (after the full start-up gate against a real
Registry) and, as the baseline measured in the same run, by KServe's Python
``ModelServer`` with an onnxruntime predictor (``tests/support/kserve_onnx_server.py``, from
``.venv-kserve``: ``make kserve-venv``; skipped with a note when that venv is missing).
The load is tritonclient[http]'s own client in a closed loop (one connection, one request
in flight, a 1xD input), so JSON encoding/decoding on the client is part of every number.
Prints requests/s, p50 and p99 per server, size and mode, then the ratios.
Usage: ``python bench/serve.py [--seconds 4]``.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tritonclient.http as httpclient  # noqa: E402
from tests.serve.harness import configure_gate, publish_signed, run_serve  # noqa: E402
from tests.serve.onnx_models import linear_scorer  # noqa: E402
from tests.support.registry import make_test_env, start_registry  # noqa: E402

KSERVE_PYTHON = ROOT / ".venv-kserve" / "bin" / "python"
SIZES = {"1x4": 4, "1x65536": 65536}
MODES = ("json", "binary")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


def closed_loop(
    url: str, model: str, x: np.ndarray, binary: bool, seconds: float
) -> dict[str, Any]:
    """One tritonclient connection, one request in flight, for ``seconds`` after a warm-up."""
    client = httpclient.InferenceServerClient(url, network_timeout=60, connection_timeout=60)
    try:
        inp = httpclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = [httpclient.InferRequestedOutput("score", binary_data=binary)]
        # tritonclient sends no Content-Type; KServe's ModelServer then reads a JSON body as
        # bytes and refuses it for lack of Inference-Header-Content-Length. Say it, for all.
        headers = None if binary else {"Content-Type": "application/json"}
        for _ in range(20):
            result = client.infer(model, [inp], outputs=out, headers=headers)
        score = result.as_numpy("score")
        if score is None or score.shape != (1, 1):
            raise SystemExit(f"{url}: unexpected answer {result.get_response()}")
        latencies: list[float] = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            client.infer(model, [inp], outputs=out, headers=headers)
            latencies.append(time.perf_counter() - t0)
        wall = time.perf_counter() - start
    finally:
        client.close()
    return {
        "n": len(latencies),
        "rps": len(latencies) / wall,
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "score": float(score.reshape(-1)[0]),
    }


def bench_server(url: str, model: str, dim: int, seconds: float) -> dict[str, dict[str, Any]]:
    x = np.random.default_rng(dim).standard_normal((1, dim)).astype(np.float32)
    return {mode: closed_loop(url, model, x, mode == "binary", seconds) for mode in MODES}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_kserve(model_path: Path, name: str, log: Path, bench: Callable[[str], Any]) -> Any:
    port = free_port()
    server = ROOT / "tests" / "support" / "kserve_onnx_server.py"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [str(KSERVE_PYTHON), str(server), name, str(model_path), str(port)],
            stdout=err,
            stderr=err,
        )
    try:
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.is_model_ready(name):
                    break
            except Exception:  # not listening yet
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("kserve ModelServer did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        client.close()
        return bench(f"127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0, help="per server, size and mode")
    args = ap.parse_args()
    if not 0.5 <= args.seconds <= 120:
        raise SystemExit("--seconds must be in 0.5..120")
    results: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="tl-bench-serve-") as tmp:
        env = make_test_env(Path(tmp) / "env")
        try:
            with start_registry(env) as reg:
                configure_gate(env.gate_config, refresh=30.0)
                for label, dim in SIZES.items():
                    name = f"scorer-{dim}"
                    weights = np.random.default_rng(1).uniform(-0.01, 0.01, dim).tolist()
                    pub = publish_signed(reg, name, "1", weights, 0.0)
                    serving = run_serve(env.gate_config, f"{name}@production")
                    if isinstance(serving, subprocess.CompletedProcess):
                        raise SystemExit(f"trustload serve denied: {serving.stderr!r}")
                    try:
                        url = serving.url.removeprefix("http://")
                        results[("trustload", label)] = bench_server(url, name, dim, args.seconds)
                    finally:
                        serving.stop()
                    if KSERVE_PYTHON.exists():
                        assert pub["path"].read_bytes() == linear_scorer(weights, 0.0)
                        results[("kserve", label)] = run_kserve(
                            pub["path"],
                            name,
                            Path(tmp) / f"kserve-{dim}.log",
                            lambda u, n=name, d=dim: bench_server(u, n, d, args.seconds),
                        )
        finally:
            env.close()
    report(results)


def report(results: dict[tuple[str, str], dict[str, dict[str, Any]]]) -> None:
    print(f"{'server':10} {'input':8} {'mode':7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'n':>6}")
    for (server, label), modes in results.items():
        for mode, r in modes.items():
            print(
                f"{server:10} {label:8} {mode:7} {r['rps']:9.1f} {r['p50_ms']:8.2f} "
                f"{r['p99_ms']:8.2f} {r['n']:6d}"
            )
    print("\nratios (same run):")
    for label in SIZES:
        ours = results[("trustload", label)]
        speed = ours["binary"]["rps"] / ours["json"]["rps"]
        tail = ours["json"]["p99_ms"] / ours["binary"]["p99_ms"]
        print(
            f"  trustload {label}: binary/JSON throughput x{speed:.2f}, JSON/binary p99 x{tail:.2f}"
        )
        base = results.get(("kserve", label))
        if base is None:
            continue
        for mode in MODES:
            print(
                f"  trustload/kserve {label} {mode}: throughput "
                f"x{ours[mode]['rps'] / base[mode]['rps']:.2f}, "
                f"p99 x{ours[mode]['p99_ms'] / base[mode]['p99_ms']:.2f}"
            )
        # Both servers ran the same model on the same input: same score.
        for mode in MODES:
            assert abs(ours[mode]["score"] - base[mode]["score"]) < 1e-5, (ours, base)
    if not any(server == "kserve" for server, _ in results):
        print("  (no kserve baseline: .venv-kserve missing, run `make kserve-venv`)")


if __name__ == "__main__":
    main()
