"""Open Inference Protocol (KServe v2) over HTTP, plus ``/metrics`` (INTERFACE.md).

Request parsing and response encoding (JSON and the binary tensor data extension) live
in the pure module :mod:`trustload.serve.oip`; this module only moves bytes.

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
from starlette.exceptions import HTTPException as StarletteHTTPException

from trustload import __version__
from trustload.config import ServeConfig
from trustload.metrics import Metrics
from trustload.serve.active import ActiveModel
from trustload.serve.oip import (
    HEADER_LENGTH,
    InferenceRequest,
    Limits,
    OipError,
    encode_infer_response,
    parse_infer_request,
    select_outputs,
)

# Triton's names for the extensions (GET /v2); only what is implemented is listed.
EXTENSIONS = ("binary_tensor_data",)
_UNSUPPORTED = {
    "config": "model_configuration",
    "stats": "statistics",
    "trace/setting": "trace",
}


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


def _unsupported(extension: str) -> JSONResponse:
    return _error(
        404,
        f"the {extension!r} extension is not supported by trustload serve "
        f"(GET /v2 lists the supported extensions: {', '.join(EXTENSIONS)})",
    )


def _served(active: ActiveModel | None, name: str, version: str | None) -> JSONResponse | None:
    """An error answer unless ``name`` (and ``version``, when given) is what is served."""
    if active is None:
        return _error(503, "no verified model is loaded")
    if name != active.name or (version is not None and version != active.version):
        shown = f"{name!r} version {version!r}" if version is not None else repr(name)
        return _error(404, f"model {shown} is not served here")
    return None


def _body_response(
    active: ActiveModel, parsed: InferenceRequest, outputs: dict[str, np.ndarray[Any, Any]]
) -> Response:
    head: dict[str, Any] = {"model_name": active.name, "model_version": active.version}
    if parsed.id is not None:
        head["id"] = parsed.id
    head["parameters"] = {"artifact_digest": active.artifact_digest}
    data, header_length = encode_infer_response(head, select_outputs(parsed, outputs))
    if header_length is None:
        return Response(data, media_type="application/json")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(header_length)},
    )


def create_app(state: ServingState, config: ServeConfig, metrics: Metrics) -> FastAPI:
    """Build the OIP v2 app over a runtime; no heavy work at construction."""
    app = FastAPI(title="trustload serving", docs_url=None, redoc_url=None, openapi_url=None)
    slots = asyncio.Semaphore(max(1, config.max_concurrency))
    # Every element costs at least one byte of body (JSON or binary), so a tensor with
    # more elements than the body limit has bytes cannot be honest.
    limits = Limits(max_elements=max(1, config.max_request_bytes))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=headers
        )

    async def _infer_then_release(
        active: ActiveModel, feeds: dict[str, np.ndarray[Any, Any]]
    ) -> dict[str, np.ndarray[Any, Any]]:
        try:
            return await run_in_threadpool(active.model.infer, feeds)
        finally:
            slots.release()

    async def _parse(request: Request, active: ActiveModel) -> InferenceRequest:
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            raise _HTTPError(415, f"Content-Encoding {encoding!r} is not supported")
        try:  # a client dripping its body cannot hold a connection open forever
            body = await asyncio.wait_for(
                _read_bounded(request, config.max_request_bytes), config.request_timeout
            )
        except TimeoutError as exc:
            raise _HTTPError(408, "request body not received in time") from exc
        try:
            parsed = parse_infer_request(
                body,
                {s.name: s for s in active.model.inputs},
                limits,
                header_length=request.headers.get(HEADER_LENGTH),
            )
        except OipError as exc:
            raise _HTTPError(exc.status, exc.message) from exc
        known = {s.name for s in active.model.outputs}
        for out in parsed.outputs or ():
            if out.name not in known:
                raise _HTTPError(400, f"unknown output {out.name!r}")
        return parsed

    async def _run(
        active: ActiveModel, feeds: dict[str, np.ndarray[Any, Any]]
    ) -> dict[str, np.ndarray[Any, Any]]:
        try:
            await asyncio.wait_for(slots.acquire(), timeout=config.request_timeout)
        except TimeoutError as exc:
            raise _HTTPError(503, "too many concurrent inferences") from exc
        task = asyncio.ensure_future(_infer_then_release(active, feeds))
        try:
            # shield: on timeout the client gets 504 at once, while the slot stays
            # taken until the worker thread really finishes (a strict bound).
            return await asyncio.wait_for(asyncio.shield(task), config.request_timeout)
        except TimeoutError as exc:
            raise _HTTPError(504, "inference timed out") from exc
        except Exception as exc:  # runtime library errors become a 400
            raise _HTTPError(400, f"inference failed: {type(exc).__name__}") from exc

    for suffix, extension in _UNSUPPORTED.items():

        async def unsupported(name: str, version: str = "", _ext: str = extension) -> Response:
            return _unsupported(_ext)

        for path in (
            f"/v2/models/{{name}}/{suffix}",
            f"/v2/models/{{name}}/versions/{{version}}/{suffix}",
        ):
            app.add_api_route(path, unsupported, methods=["GET", "POST"])

    @app.api_route("/v2/repository/{rest:path}", methods=["GET", "POST"])
    async def repository(rest: str) -> Response:
        return _unsupported("model_repository")

    @app.api_route("/v2/models/stats", methods=["GET"])
    async def all_stats() -> Response:
        return _unsupported("statistics")

    @app.api_route("/v2/{kind}sharedmemory/{rest:path}", methods=["GET", "POST"])
    async def shared_memory(kind: str, rest: str) -> Response:
        return _unsupported(f"{kind}_shared_memory")

    @app.api_route("/v2/logging", methods=["GET", "POST"])
    async def logging_ext() -> Response:
        return _unsupported("logging")

    @app.api_route("/v2/trace/setting", methods=["GET", "POST"])
    async def trace_ext() -> Response:
        return _unsupported("trace")

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
        return JSONResponse(
            {"name": "trustload", "version": __version__, "extensions": list(EXTENSIONS)}
        )

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Response:
        active = state.current()
        refused = _served(active, name, version)
        if refused is not None or active is None:
            return refused or _error(503, "no verified model is loaded")
        return JSONResponse(_metadata(active))

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        active = state.current()
        if active is None:
            return JSONResponse({"name": name, "ready": False}, status_code=503)
        refused = _served(active, name, version)
        return refused or JSONResponse({"name": name, "ready": True})

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        active = state.current()
        refused = _served(active, name, version)
        if refused is not None or active is None:
            outcome = "not_ready" if active is None else "not_found"
            metrics.inference_requests.labels(outcome=outcome).inc()
            return refused or _error(503, "no verified model is loaded")
        try:
            parsed = await _parse(request, active)
            outputs = await _run(active, parsed.inputs)
            response = _body_response(active, parsed, outputs)
        except (_HTTPError, OipError) as exc:
            metrics.inference_requests.labels(outcome=str(exc.status)).inc()
            return _error(exc.status, exc.message)
        metrics.inference_requests.labels(outcome="ok").inc()
        return response

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    return app
