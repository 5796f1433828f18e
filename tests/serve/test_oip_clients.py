"""Real OIP v2 clients against a real `trustload serve` process serving a signed ONNX model:
tritonclient[http] in binary (its default) and JSON mode, and the kserve package's own
InferenceRESTClient (from the separate venv `make kserve-venv` builds: see below)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from .harness import Serving, serving_one_model
from .onnx_models import string_echo

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KSERVE_PYTHON = ROOT / ".venv-kserve" / "bin" / "python"
WEIGHTS = (1.0, -1.0)


def _expected(x: np.ndarray) -> np.ndarray:
    w = np.asarray(WEIGHTS, dtype=np.float32).reshape(-1, 1)
    return (1.0 / (1.0 + np.exp(-(x @ w)))).astype(np.float32)


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    with serving_one_model(tmp_path_factory.mktemp("oip-clients"), weights=WEIGHTS) as started:
        yield started


@pytest.fixture
def triton(serving: Serving) -> Iterator[object]:
    client = httpclient.InferenceServerClient(serving.url.removeprefix("http://"))
    try:
        yield client
    finally:
        client.close()


def _inputs(x: np.ndarray, binary: bool) -> list[object]:
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    return [inp]


def test_tritonclient_server_and_model_metadata(triton) -> None:  # type: ignore[no-untyped-def]
    assert triton.is_server_live() and triton.is_server_ready()
    meta = triton.get_server_metadata()
    assert meta["name"] == "trustload" and "binary_tensor_data" in meta["extensions"]
    for version in ("", "1"):
        model = triton.get_model_metadata("risk", model_version=version)
        assert model["name"] == "risk" and model["versions"] == ["1"]
        assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]
        assert model["parameters"]["artifact_digest"].startswith("sha256:")
    with pytest.raises(InferenceServerException) as err:
        triton.get_model_metadata("risk", model_version="9")
    assert err.value.status() == "404"


def test_tritonclient_readiness_per_version(triton) -> None:  # type: ignore[no-untyped-def]
    assert triton.is_model_ready("risk")
    assert triton.is_model_ready("risk", model_version="1")
    assert not triton.is_model_ready("risk", model_version="9")
    assert not triton.is_model_ready("other")


@pytest.mark.parametrize("version", ["", "1"])
def test_tritonclient_binary_inference(triton, version: str) -> None:  # type: ignore[no-untyped-def]
    """tritonclient's default request: binary input, no outputs named -> binary_data_output."""
    x = np.asarray([[2.0, 1.0], [0.0, 0.0], [-3.5, 4.25]], dtype=np.float32)
    result = triton.infer("risk", _inputs(x, True), model_version=version, request_id="b1")
    doc = result.get_response()
    assert doc["model_version"] == "1" and doc["id"] == "b1"
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 12}
    assert "data" not in doc["outputs"][0]
    np.testing.assert_allclose(result.as_numpy("score"), _expected(x), rtol=1e-4, atol=1e-6)


def test_tritonclient_json_inference(triton) -> None:  # type: ignore[no-untyped-def]
    x = np.asarray([[2.0, 1.0]], dtype=np.float32)
    out = [httpclient.InferRequestedOutput("score", binary_data=False)]
    result = triton.infer("risk", _inputs(x, False), outputs=out, model_version="1")
    doc = result.get_response()
    assert doc["outputs"][0]["shape"] == [1, 1] and "data" in doc["outputs"][0]
    np.testing.assert_allclose(result.as_numpy("score"), _expected(x), rtol=1e-4, atol=1e-6)


def test_tritonclient_mixed_binary_in_json_out(triton) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(7).standard_normal((5, 2)).astype(np.float32)
    out = [httpclient.InferRequestedOutput("score", binary_data=False)]
    result = triton.infer("risk", _inputs(x, True), outputs=out)
    np.testing.assert_allclose(result.as_numpy("score"), _expected(x), rtol=1e-4, atol=1e-6)


def test_tritonclient_wrong_version_and_unsupported_extensions(triton) -> None:  # type: ignore[no-untyped-def]
    x = np.zeros((1, 2), dtype=np.float32)
    with pytest.raises(InferenceServerException) as err:
        triton.infer("risk", _inputs(x, True), model_version="9")
    assert err.value.status() == "404"
    with pytest.raises(InferenceServerException) as err:
        triton.get_model_config("risk")
    assert err.value.status() == "404" and "model_configuration" in err.value.message()
    with pytest.raises(InferenceServerException) as err:
        triton.get_model_repository_index()
    assert err.value.status() == "404" and "model_repository" in err.value.message()
    with pytest.raises(InferenceServerException) as err:
        triton.load_model("risk")
    assert err.value.status() == "404" and "model_repository" in err.value.message()


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    root = tmp_path_factory.mktemp("oip-echo")
    with serving_one_model(root, name="echo", data=string_echo()) as started:
        client = httpclient.InferenceServerClient(started.url.removeprefix("http://"))
        try:
            yield client
        finally:
            client.close()


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_bytes_tensors(echo, binary: bool) -> None:  # type: ignore[no-untyped-def]
    """BYTES in and out: 4-byte length-prefixed elements in binary mode, strings in JSON."""
    values = ["a", "straße", "", "x" * 300]
    meta = echo.get_model_metadata("echo")
    assert meta["inputs"] == [{"name": "s", "datatype": "BYTES", "shape": [-1]}]
    inp = httpclient.InferInput("s", [len(values)], "BYTES")
    inp.set_data_from_numpy(np.asarray([v.encode() for v in values], dtype=object), binary)
    out = [httpclient.InferRequestedOutput("echo", binary_data=binary)]
    result = echo.infer("echo", [inp], outputs=out)
    doc = result.get_response()["outputs"][0]
    assert doc["datatype"] == "BYTES" and doc["shape"] == [len(values)]
    assert ("parameters" in doc) is binary
    got = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("echo")]
    assert got == values


KSERVE_CLIENT = r"""
import asyncio, json, sys
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

async def main(url):
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=10))
    out = {}
    out["live"] = await client.is_server_live(url)
    out["ready"] = await client.is_model_ready(url, "risk")
    x = np.asarray([[2.0, 1.0], [-1.0, 3.0]], dtype=np.float32)
    for binary in (False, True):
        inp = InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        req = InferRequest(model_name="risk", infer_inputs=[inp], request_id=f"k{binary}")
        res = await client.infer(url, req, model_name="risk")
        out[f"binary={binary}"] = {
            "model_name": res.model_name,
            "id": res.id,
            "parameters": res.parameters,
            "score": res.outputs[0].as_numpy().tolist(),
        }
    await client.close()
    print(json.dumps(out))

asyncio.run(main(sys.argv[1]))
"""


def test_kserve_inference_rest_client(serving: Serving, tmp_path: Path) -> None:
    """kserve's InferenceRESTClient (JSON and binary) from its own venv.

    kserve 0.21 would downgrade protobuf (7.x -> 6.33) and add ~40 packages (grpcio,
    pandas, kubernetes, ...) to the dev venv, so it lives in `.venv-kserve`
    (`make kserve-venv`); CI builds it.
    """
    if not KSERVE_PYTHON.exists():
        if os.environ.get("TRUSTLOAD_REQUIRE_KSERVE"):
            pytest.fail("TRUSTLOAD_REQUIRE_KSERVE is set but .venv-kserve is missing")
        pytest.skip("no .venv-kserve: run `make kserve-venv` (kserve would downgrade protobuf)")
    script = tmp_path / "kserve_client.py"
    script.write_text(KSERVE_CLIENT)
    res = subprocess.run(
        [str(KSERVE_PYTHON), str(script), serving.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["live"] is True and doc["ready"] is True
    x = np.asarray([[2.0, 1.0], [-1.0, 3.0]], dtype=np.float32)
    for mode in ("binary=False", "binary=True"):
        # kserve's InferResponse keeps the name, id and parameters (not the version).
        assert doc[mode]["model_name"] == "risk" and doc[mode]["id"] == f"k{mode[7:]}"
        assert doc[mode]["parameters"]["artifact_digest"].startswith("sha256:")
        np.testing.assert_allclose(
            np.asarray(doc[mode]["score"]), _expected(x), rtol=1e-4, atol=1e-6
        )
