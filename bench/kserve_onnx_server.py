"""KServe's Python ModelServer serving an ONNX file with onnxruntime: the bench baseline.

Runs under ``.venv-kserve/bin/python`` (``make kserve-venv``), not the project venv.
Configuration through the environment (kserve parses ``sys.argv`` itself at import):
``KSERVE_BENCH_MODEL`` (path), ``KSERVE_BENCH_NAME``, ``KSERVE_BENCH_PORT``. It answers
binary outputs exactly when the request asks (``binary_data_output`` / ``binary_data``),
as trustload does, so both servers do the same work per request.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class OnnxPredictor(Model):  # type: ignore[misc]
    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        self.session = ort.InferenceSession(
            self.path.read_bytes(), providers=["CPUExecutionProvider"]
        )
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
    model = OnnxPredictor(os.environ["KSERVE_BENCH_NAME"], Path(os.environ["KSERVE_BENCH_MODEL"]))
    ModelServer(
        http_port=int(os.environ["KSERVE_BENCH_PORT"]),
        enable_grpc=False,
        enable_latency_logging=False,
        workers=1,
    ).start([model])
