"""KServe's own Python ``ModelServer`` serving an ONNX model with onnxruntime.

One server for two users: the KServe end-to-end test (the directory ``trustload fetch``
wrote, read as a KServe custom predictor reads ``/mnt/models``) and the bench baseline
(``bench/serve.py``: a plain KServe server doing the same work per request as
trustload). Runs under ``.venv-kserve/bin/python`` (``make kserve-venv``), not the
project venv: ``kserve_onnx_server.py NAME MODEL PORT``, MODEL an ``.onnx`` file or a
directory holding ``model.onnx``. Binary outputs are answered exactly when the request
asks (``binary_data_output`` / ``binary_data``), as trustload does. KServe's REST
server hard-codes host 0.0.0.0; everything here listens on loopback only, so
``uvicorn.Config`` is given ``host=127.0.0.1`` (nothing else of KServe is changed).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn

_Config = uvicorn.Config


class _LoopbackConfig(_Config):  # type: ignore[misc]
    def __init__(self, app: Any, **kw: Any) -> None:
        kw["host"] = "127.0.0.1"
        super().__init__(app, **kw)


uvicorn.Config = _LoopbackConfig  # type: ignore[misc]

import onnxruntime as ort  # noqa: E402
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer  # noqa: E402


class OnnxPredictor(Model):  # type: ignore[misc]
    def __init__(self, name: str, model: Path) -> None:
        super().__init__(name)
        self.path = model / "model.onnx" if model.is_dir() else model

    def load(self) -> bool:
        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        self.ready = True
        return True

    def predict(self, payload: InferRequest, headers: Any = None, **_: Any) -> InferResponse:
        feeds = {i.name: i.as_numpy() for i in payload.inputs}
        names = [o.name for o in self.session.get_outputs()]
        outputs = []
        for name, value in zip(names, self.session.run(names, feeds), strict=True):
            out = InferOutput(name=name, shape=list(value.shape), datatype="FP32")
            out.set_data_from_numpy(value, binary_data=payload.use_binary_outputs)
            outputs.append(out)
        return InferResponse(
            response_id=payload.id or "",
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


if __name__ == "__main__":
    name, model_path, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    sys.argv = sys.argv[:1]  # kserve parses sys.argv itself
    model = OnnxPredictor(name, model_path)
    model.load()
    ModelServer(http_port=port, enable_grpc=False, enable_latency_logging=False, workers=1).start(
        [model]
    )
