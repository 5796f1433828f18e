"""OIP v2 routes, limits and /metrics over a real ONNX model (in-process ASGI)."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from trustload.config import ServeConfig
from trustload.digests import FileEntry, ModelLayout
from trustload.facts import ModelCard, VersionRecord
from trustload.metrics import Metrics
from trustload.serve.active import ActiveModel
from trustload.serve.app import create_app
from trustload.serve.loader import LoadedModel, TensorSpec, load_verified

from .onnx_models import write_model


def _record(digest: str) -> VersionRecord:
    card = ModelCard("A", "credit", ("credit_scoring",), None, "onnx")
    return VersionRecord(
        name="risk",
        version="1",
        stage="Approved",
        artifact_digest=digest,
        artifact_size=1,
        kind="file",
        format="onnx",
        policy_digest="sha256:" + "1" * 64,
        git_sha="g",
        container_digest="sha256:" + "2" * 64,
        dataset_snapshot="d",
        revoked=False,
        quarantined=False,
        card=card,
        alias="production",
        alias_revision=1,
    )


class _State:
    def __init__(self, active: ActiveModel | None) -> None:
        self.active = active

    def current(self) -> ActiveModel | None:
        return self.active

    def live(self) -> bool:
        return True


@pytest.fixture()
def served(tmp_path: Path) -> tuple[_State, TestClient, Metrics]:
    path = write_model(tmp_path / "m.onnx", [1.0, -1.0], 0.0)
    data = path.read_bytes()
    hexd = hashlib.sha256(data).hexdigest()
    model = load_verified(
        ModelLayout.from_path(path), [FileEntry(path.name, hexd, len(data))], "onnx"
    )
    state = _State(ActiveModel(_record("sha256:" + hexd), model, {}, datetime.now(UTC)))
    metrics = Metrics()
    app = create_app(state, ServeConfig(max_request_bytes=4096, max_concurrency=2), metrics)
    return state, TestClient(app), metrics


def test_health_and_metadata(served: tuple[_State, TestClient, Metrics]) -> None:
    state, client, _ = served
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2/models/risk").json()
    assert meta["name"] == "risk" and meta["versions"] == ["1"]
    assert meta["parameters"]["artifact_digest"] == state.active.artifact_digest  # type: ignore[union-attr]
    assert meta["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": [-1, 2]}
    assert client.get("/v2/models/other").status_code == 404


def test_infer_round_trip(served: tuple[_State, TestClient, Metrics]) -> None:
    _, client, metrics = served
    body = {
        "id": "r1",
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [2, 1, 0, 0]}],
    }
    res = client.post("/v2/models/risk/infer", json=body)
    assert res.status_code == 200, res.text
    doc = res.json()
    assert doc["model_name"] == "risk" and doc["model_version"] == "1" and doc["id"] == "r1"
    out = doc["outputs"][0]
    assert out["name"] == "score" and out["shape"] == [2, 1] and out["datatype"] == "FP32"
    assert abs(out["data"][0] - 1 / (1 + math.exp(-1))) < 1e-6 and abs(out["data"][1] - 0.5) < 1e-6
    assert client.post("/v2/models/risk/versions/1/infer", json=body).status_code == 200
    assert client.post("/v2/models/risk/versions/9/infer", json=body).status_code == 404
    assert b'trustload_inference_requests_total{outcome="ok"} 2.0' in metrics.render()


@pytest.mark.parametrize(
    "body,status",
    [
        ({"inputs": [{"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}, 400),
        ({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]}]}, 400),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}]}, 400),
        ({"inputs": [{"name": "x", "shape": [1, -2], "datatype": "FP32", "data": [1, 2]}]}, 400),
        ({"inputs": []}, 400),
        ({"nonsense": True}, 400),
    ],
)
def test_bad_requests_are_400(
    served: tuple[_State, TestClient, Metrics], body: dict, status: int
) -> None:
    _, client, _ = served
    assert client.post("/v2/models/risk/infer", json=body).status_code == status


def test_body_size_limit(served: tuple[_State, TestClient, Metrics]) -> None:
    _, client, _ = served
    big = {"inputs": [{"name": "x", "shape": [1000, 2], "datatype": "FP32", "data": [1.5] * 2000}]}
    assert client.post("/v2/models/risk/infer", json=big).status_code == 413

    # A chunked body with no Content-Length is counted as it streams.
    def gen():
        for _ in range(100):
            yield b" " * 100

    res = client.post(
        "/v2/models/risk/infer", content=gen(), headers={"content-type": "application/json"}
    )
    assert res.status_code == 413


def test_not_ready_without_model(served: tuple[_State, TestClient, Metrics]) -> None:
    state, client, _ = served
    state.active = None
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/models/risk").status_code == 503
    body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    assert client.post("/v2/models/risk/infer", json=body).status_code == 503


def test_metrics_exposition(served: tuple[_State, TestClient, Metrics]) -> None:
    _, client, metrics = served
    metrics.observe_decision(
        {
            "event": "startup_deny",
            "decision": "deny",
            "reasons": ["REVOKED"],
            "latency_ms": 12.0,
            "checks": [{"name": "revoked", "ms": 0.4}, {"name": "signature", "ms": 3.0}],
        }
    )
    metrics.set_loaded("risk", "1", "sha256:" + "a" * 64)
    metrics.registry_contact()
    text = client.get("/metrics").text
    assert (
        'trustload_decisions_total{decision="deny",event="startup_deny",reason="REVOKED"} 1.0'
        in text
    )
    assert 'trustload_check_duration_seconds_count{check="signature"} 1.0' in text
    assert (
        'trustload_loaded_model_info{artifact_digest="sha256:'
        + "a" * 64
        + '",model="risk",version="1"} 1.0'
        in text
    )
    assert "trustload_registry_contact_age_seconds" in text
    # Two runtimes in one process do not share (or collide on) metric registries.
    assert Metrics().render() != metrics.render()


class _BlockingModel(LoadedModel):
    """A model whose inference waits for the test (limits are the thing under test)."""

    format = "test"

    def __init__(self) -> None:
        super().__init__([TensorSpec("x", "FP32", (-1, 2))], [TensorSpec("y", "FP32", (-1, 2))])
        self.release = threading.Event()
        self.started = threading.Event()

    def infer(self, feeds):  # type: ignore[no-untyped-def]
        self.started.set()
        self.release.wait(10)
        return {"y": feeds["x"]}


def test_timeout_and_concurrency_limits(tmp_path: Path) -> None:
    model = _BlockingModel()
    state = _State(ActiveModel(_record("sha256:" + "0" * 64), model, {}, datetime.now(UTC)))
    cfg = ServeConfig(max_concurrency=1, request_timeout=0.3)
    with TestClient(create_app(state, cfg, Metrics())) as client:  # one event loop
        _limits(client, model)


def _limits(client: TestClient, model: _BlockingModel) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    # The first request times out (504) but its worker still holds the only slot ...
    assert client.post("/v2/models/risk/infer", json=body).status_code == 504
    assert model.started.is_set()
    # ... so a second one cannot start: 503 instead of an unbounded pile-up.
    assert client.post("/v2/models/risk/infer", json=body).status_code == 503
    model.release.set()
    model.started.clear()
    # Once the stuck inference really finished, the slot is free again.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        res = client.post("/v2/models/risk/infer", json=body)
        if res.status_code == 200:
            break
    assert res.status_code == 200 and res.json()["outputs"][0]["data"] == [1.0, 2.0]


def test_server_metadata_versioned_routes_and_unsupported_extensions(
    served: tuple[_State, TestClient, Metrics],
) -> None:
    state, client, _ = served
    from trustload import __version__

    meta = client.get("/v2").json()
    assert meta == {
        "name": "trustload",
        "version": __version__,
        "extensions": ["binary_tensor_data"],
    }
    assert client.get("/v2/models/risk/versions/1").json()["versions"] == ["1"]
    assert client.get("/v2/models/risk/versions/2").status_code == 404
    assert client.get("/v2/models/risk/ready").json() == {"name": "risk", "ready": True}
    assert client.get("/v2/models/risk/versions/1/ready").status_code == 200
    assert client.get("/v2/models/risk/versions/2/ready").status_code == 404
    assert client.get("/v2/models/other/ready").status_code == 404
    for method, path, ext in [
        ("GET", "/v2/models/risk/config", "model_configuration"),
        ("GET", "/v2/models/risk/versions/1/config", "model_configuration"),
        ("GET", "/v2/models/risk/stats", "statistics"),
        ("GET", "/v2/models/stats", "statistics"),
        ("POST", "/v2/repository/index", "model_repository"),
        ("POST", "/v2/repository/models/risk/load", "model_repository"),
        ("POST", "/v2/repository/models/risk/unload", "model_repository"),
        ("GET", "/v2/systemsharedmemory/status", "system_shared_memory"),
        ("GET", "/v2/cudasharedmemory/status", "cuda_shared_memory"),
        ("GET", "/v2/trace/setting", "trace"),
        ("GET", "/v2/logging", "logging"),
    ]:
        res = client.request(method, path)
        assert res.status_code == 404, (path, res.text)
        assert ext in res.json()["error"] and "binary_tensor_data" in res.json()["error"]
    # Any other unknown route or method answers the same {"error": ...} shape.
    assert set(client.get("/nope").json()) == {"error"}
    assert set(client.get("/v2/models/risk/infer").json()) == {"error"}
    state.active = None
    assert client.get("/v2/models/risk/versions/1/ready").status_code == 503


def test_binary_request_and_response_in_process(served: tuple[_State, TestClient, Metrics]) -> None:
    _, client, _ = served
    import json as _json

    import numpy as np

    x = np.asarray([[2.0, 1.0], [float("nan"), 0.0]], dtype="<f4")
    head = _json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 16},
                }
            ],
            "outputs": [{"name": "score", "parameters": {"binary_data": True}}],
        }
    ).encode()
    res = client.post(
        "/v2/models/risk/infer",
        content=head + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert res.status_code == 200, res.text
    n = int(res.headers["inference-header-content-length"])
    assert res.headers["content-type"] == "application/octet-stream"
    doc = _json.loads(res.content[:n])
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 8}
    score = np.frombuffer(res.content[n:], dtype="<f4")
    assert abs(score[0] - 1 / (1 + math.exp(-1))) < 1e-6 and math.isnan(score[1])
    # The same NaN in a JSON answer is written as NaN, not a 500.
    body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    nan = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [0, 0]}]}
    nan_text = _json.dumps(nan).replace("[0, 0]", "[NaN, 0]")
    res = client.post(
        "/v2/models/risk/infer", content=nan_text, headers={"content-type": "application/json"}
    )
    assert res.status_code == 200 and math.isnan(_json.loads(res.text)["outputs"][0]["data"][0])
    gz = client.post("/v2/models/risk/infer", json=body, headers={"Content-Encoding": "gzip"})
    assert gz.status_code == 415
    wrong = {**body, "outputs": [{"name": "nope"}]}
    assert client.post("/v2/models/risk/infer", json=wrong).status_code == 400


def _fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    path = write_model(tmp_path_factory.mktemp("fuzz") / "m.onnx", [1.0, -1.0], 0.0)
    data = path.read_bytes()
    hexd = hashlib.sha256(data).hexdigest()
    model = load_verified(
        ModelLayout.from_path(path), [FileEntry(path.name, hexd, len(data))], "onnx"
    )
    state = _State(ActiveModel(_record("sha256:" + hexd), model, {}, datetime.now(UTC)))
    return TestClient(create_app(state, ServeConfig(max_request_bytes=8192), Metrics()))


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    return _fuzz_app(tmp_path_factory)


def test_hostile_requests_never_5xx(fuzz_client: TestClient) -> None:
    """Generated JSON and binary requests (lying header lengths included) through the whole
    app and a real ONNX model: 200 or a 4xx, never a 5xx, never an escaped exception."""
    import json as _json

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.serve.oip_strategies import near_valid, requests

    blob = st.binary(max_size=64)
    header = st.one_of(st.none(), st.integers(-3, 600).map(str), st.text(max_size=4))

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(requests, near_valid()), blob, header)
    def run(doc: dict, tail: bytes, length: str | None) -> None:
        # The served model has the one input x.
        doc["inputs"] = [t for t in doc["inputs"] if t.get("name") != "flag"]
        body = _json.dumps(doc).encode() + tail
        headers = {} if length is None else {"Inference-Header-Content-Length": length}
        try:
            res = fuzz_client.post("/v2/models/risk/infer", content=body, headers=headers)
        except UnicodeEncodeError:
            return  # httpx refuses a non-latin-1 header value before sending anything
        assert res.status_code in (200, 400, 413), (res.status_code, res.text)
        assert res.status_code == 200 or set(res.json()) == {"error"}
        seen[res.status_code] = seen.get(res.status_code, 0) + 1

    seen: dict[int, int] = {}
    run()
    assert seen.get(200) and seen.get(400), seen  # both paths were really exercised
