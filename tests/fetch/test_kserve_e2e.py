"""The initializer handing off to a real KServe server: ``trustload fetch`` writes the
verified tree, KServe's own ``ModelServer`` (kserve 0.21, in ``.venv-kserve``) loads the
ONNX model from it with onnxruntime on 127.0.0.1, and kserve's ``InferenceRESTClient``
queries it in JSON and binary tensor mode, tritonclient in its default binary mode."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.fetch.conftest import ROOT, Fetcher
from tests.serve.onnx_models import linear_scorer

KSERVE_PYTHON = ROOT / ".venv-kserve" / "bin" / "python"
SERVER = ROOT / "tests" / "support" / "kserve_onnx_server.py"
WEIGHTS, BIAS = [0.5, -0.25], 0.1

CLIENT = r"""
import asyncio, json, sys
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

async def main(url, name):
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=10))
    out = {"ready": await client.is_model_ready(url, name)}
    x = np.asarray([[2.0, 1.0], [-1.0, 3.0]], dtype=np.float32)
    for binary in (False, True):
        inp = InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        req = InferRequest(model_name=name, infer_inputs=[inp], request_id=f"r{binary}")
        res = await client.infer(url, req, model_name=name)
        out[f"binary={binary}"] = res.outputs[0].as_numpy().tolist()
    await client.close()
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _expected(row: list[float]) -> float:
    z = sum(w * v for w, v in zip(WEIGHTS, row, strict=True)) + BIAS
    return 1.0 / (1.0 + math.exp(-z))


def _triton_scores(url: str, name: str) -> list[float]:
    import numpy as np
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url, network_timeout=30)
    try:
        assert client.is_model_ready(name)
        x = np.asarray([[2.0, 1.0], [-1.0, 3.0]], dtype=np.float32)
        inp = httpclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)  # binary tensor data: tritonclient's default
        out = [httpclient.InferRequestedOutput("score", binary_data=True)]
        score = client.infer(name, [inp], outputs=out).as_numpy("score")
    finally:
        client.close()
    assert score is not None
    return [float(v) for v in score[:, 0]]


def test_fetch_then_kserve_model_server_serves_the_verified_tree(
    fetcher: Fetcher, tmp_path: Path
) -> None:
    if not KSERVE_PYTHON.exists():
        if os.environ.get("TRUSTLOAD_REQUIRE_KSERVE"):
            pytest.fail("TRUSTLOAD_REQUIRE_KSERVE is set but .venv-kserve is missing")
        pytest.skip("no .venv-kserve: run `make kserve-venv` (kserve would downgrade protobuf)")
    arena = fetcher.arena
    name = arena.name("risk")
    src_dir = arena.workdir() / "risk"
    src_dir.mkdir()
    (src_dir / "model.onnx").write_bytes(linear_scorer(WEIGHTS, BIAS))
    (src_dir / "README.md").write_text("risk scorer\n")
    arena.publish(name, "1", src_dir)
    mnt = tmp_path / "mnt" / "models"
    proc = fetcher.run(f"trustload://{name}@production", str(mnt))
    assert proc.returncode == 0, proc.stderr

    port = _free_port()
    log = tmp_path / "kserve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(KSERVE_PYTHON), str(SERVER), name, str(mnt), str(port)],
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/v2/models/{name}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("KServe ModelServer did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.3)
        client = subprocess.run(
            [str(KSERVE_PYTHON), "-c", CLIENT, url, name],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert client.returncode == 0, client.stderr
        got = json.loads(client.stdout)
        got["tritonclient"] = _triton_scores(f"127.0.0.1:{port}", name)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    assert got["ready"] is True
    want = [_expected([2.0, 1.0]), _expected([-1.0, 3.0])]
    assert got["tritonclient"] == pytest.approx(want, abs=1e-6)
    for mode in ("binary=False", "binary=True"):
        scores = [row[0] for row in got[mode]]
        assert scores == pytest.approx(want, abs=1e-6), (mode, scores)
