"""Open Inference Protocol (KServe v2) over HTTP, plus ``/metrics`` (INTERFACE.md).

The app never decides what to serve: it asks a :class:`ServingState` for the current
:class:`ActiveModel` on every request and answers 503 while there is none (not
ready). Limits are enforced here, before any model code runs: the request body is
read with a hard byte cap (Content-Length is checked first, then the stream is
counted, so a lying or chunked client cannot exceed it), inference runs in a worker
thread under a timeout, and a semaphore bounds concurrent inferences.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from trustload.config import ServeConfig
from trustload.metrics import Metrics
from trustload.serve.active import ActiveModel
from trustload.serve.loader import oip_datatype
from trustload.serve.oip import Limits, OipError, parse_infer_request


class ServingState(Protocol):
    """What the HTTP layer needs from the runtime."""

    def current(self) -> ActiveModel | None: ...

    def live(self) -> bool: ...


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _HTTPError(413, f"request body larger than {limit} bytes")
        except ValueError as exc:
            raise _HTTPError(400, "bad Content-Length") from exc
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _HTTPError(413, f"request body larger than {limit} bytes")
    return bytes(body)


def _metadata(active: ActiveModel) -> dict[str, Any]:
    return {
        "name": active.name,
        "versions": [active.version],
        "platform": f"{active.model.format}",
        "inputs": [s.to_json() for s in active.model.inputs],
        "outputs": [s.to_json() for s in active.model.outputs],
        "parameters": {
            "artifact_digest": active.artifact_digest,
            "policy_digest": active.record.policy_digest,
            "stage": active.record.stage,
            "alias": active.record.alias,
            "loaded_at": active.loaded_at.isoformat(),
        },
    }


def create_app(state: ServingState, config: ServeConfig, metrics: Metrics) -> FastAPI:
    """Build the OIP v2 app over a runtime; no heavy work at construction."""
    app = FastAPI(title="trustload serving", docs_url=None, redoc_url=None, openapi_url=None)
    slots = asyncio.Semaphore(max(1, config.max_concurrency))
    # Every element costs at least one byte of body (JSON or binary), so a tensor with
    # more elements than the body limit has bytes cannot be honest.
    limits = Limits(max_elements=max(1, config.max_request_bytes))

    async def _infer_then_release(
        active: ActiveModel, feeds: dict[str, np.ndarray[Any, Any]]
    ) -> dict[str, np.ndarray[Any, Any]]:
        try:
            return await run_in_threadpool(active.model.infer, feeds)
        finally:
            slots.release()

    @app.get("/v2/health/live")
    async def live() -> Response:
        if state.live():
            return JSONResponse({"live": True})
        return JSONResponse({"live": False}, status_code=503)

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        if state.current() is not None:
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False}, status_code=503)

    @app.get("/v2")
    async def server_metadata() -> Response:
        return JSONResponse({"name": "trustload", "version": "2", "extensions": []})

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str) -> Response:
        active = state.current()
        if active is None:
            return _error(503, "no verified model is loaded")
        if name != active.name:
            return _error(404, f"model {name!r} is not served here")
        return JSONResponse(_metadata(active))

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        active = state.current()
        ok = active is not None and active.name == name
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        active = state.current()
        if active is None:
            metrics.inference_requests.labels(outcome="not_ready").inc()
            return _error(503, "no verified model is loaded")
        if name != active.name or (version is not None and version != active.version):
            metrics.inference_requests.labels(outcome="not_found").inc()
            return _error(
                404, f"model {name!r} version {version or active.version} is not served here"
            )
        try:
            try:  # a client dripping its body cannot hold a connection open forever
                body = await asyncio.wait_for(
                    _read_bounded(request, config.max_request_bytes), config.request_timeout
                )
            except TimeoutError as exc:
                raise _HTTPError(408, "request body not received in time") from exc
            try:
                parsed = parse_infer_request(body, {s.name: s for s in active.model.inputs}, limits)
            except OipError as exc:
                raise _HTTPError(exc.status, exc.message) from exc
            feeds = parsed.inputs
            try:
                await asyncio.wait_for(slots.acquire(), timeout=config.request_timeout)
            except TimeoutError as exc:
                raise _HTTPError(503, "too many concurrent inferences") from exc
            task = asyncio.ensure_future(_infer_then_release(active, feeds))
            try:
                # shield: on timeout the client gets 504 at once, while the slot stays
                # taken until the worker thread really finishes (a strict bound).
                outputs = await asyncio.wait_for(asyncio.shield(task), config.request_timeout)
            except TimeoutError as exc:
                raise _HTTPError(504, "inference timed out") from exc
            except Exception as exc:  # runtime library errors become a 400
                raise _HTTPError(400, f"inference failed: {type(exc).__name__}") from exc
        except _HTTPError as exc:
            metrics.inference_requests.labels(outcome=str(exc.status)).inc()
            return _error(exc.status, exc.message)
        wanted = [o.name for o in parsed.outputs] if parsed.outputs else list(outputs)
        out_docs = []
        for out_name in wanted:
            if out_name not in outputs:
                metrics.inference_requests.labels(outcome="400").inc()
                return _error(400, f"unknown output {out_name!r}")
            arr = outputs[out_name]
            out_docs.append(
                {
                    "name": out_name,
                    "shape": list(arr.shape),
                    "datatype": oip_datatype(arr),
                    "data": arr.reshape(-1).tolist(),
                }
            )
        metrics.inference_requests.labels(outcome="ok").inc()
        doc: dict[str, Any] = {
            "model_name": active.name,
            "model_version": active.version,
            "outputs": out_docs,
            "parameters": {"artifact_digest": active.artifact_digest},
        }
        if parsed.id is not None:
            doc["id"] = parsed.id
        return JSONResponse(doc)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    return app
