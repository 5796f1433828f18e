"""FastAPI routes of the Registry: exactly the contract in docs/registry-api.md.

Every route but ``/healthz`` and ``/openapi.json`` needs a verified bearer token; every
route (those two included) is only reachable through an mTLS connection whose client
certificate the TLS layer has verified (server.py). Every request body is bounded by
an ASGI middleware before any route reads it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from trustload.config import OciConfig
from trustload.identifiers import (
    MAX_JSON_INT,
    Kind,
    json_pattern,
    nonblank_pattern,
    parse_decimal,
)
from trustload.oidc import TokenVerifier
from trustload.registry import openapi as oa
from trustload.registry.auth import PEER_STATE_KEY, PEER_X5T_KEY, Caller, authenticate
from trustload.registry.blobs import BlobBackend, BlobStore, check_hex
from trustload.registry.errors import ApiError, bad_request, not_found
from trustload.registry.store import PublishRequest, Store, check_name, files_from_json

log = logging.getLogger("trustload.registry")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_STATUS_CODES = {
    401: "AUTH_FAILED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
}


def _error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="trustload"'
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route serves at this path (RFC 9110 ``Allow``). Starlette's own
    405 names only the first route that matched the path, not all of them."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(dict(scope, method="__none__"))
        if match != Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


class _BodyTooLarge(ApiError):
    """Raised from ``receive``: routes see an ApiError, answered as 413 JSON."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "BAD_REQUEST", f"request body larger than {limit} bytes")


class BodyLimit:
    """Bound every request body: blob uploads by ``max_blob_bytes``, all else by
    ``max_json_bytes``. A declared length above the bound is refused before reading;
    a chunked body is cut off at the first byte beyond it (413)."""

    def __init__(self, app: ASGIApp, max_json: int, max_blob: int) -> None:
        self.app = app
        self.max_json = max_json
        self.max_blob = max_blob

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_upload = scope["method"] == "POST" and str(scope["path"]).startswith("/v1/blobs/")
        limit = self.max_blob if is_upload else self.max_json
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                declared = parse_decimal(value.decode("latin-1"))
                if declared is None:  # int() would take " 1", "1_0", "+1"
                    await _error_response(400, "BAD_REQUEST", "bad Content-Length")(
                        scope, receive, send
                    )
                    return
                if declared > limit:
                    await _error_response(
                        413, "BAD_REQUEST", f"request body larger than {limit} bytes"
                    )(scope, receive, send)
                    return
        seen = 0
        started = False

        async def bounded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except _BodyTooLarge as exc:
            if not started:
                await _error_response(exc.status, exc.code, exc.message)(scope, receive, send)


_RANGE_RE = re.compile(r"bytes=([0-9]{0,20})-([0-9]{0,20})")


def check_range(header: str | None, size: int) -> None:
    """Answer bad or unsatisfiable single ranges with JSON errors (the file response
    would answer them in plain text). Several ranges are served as the whole blob."""
    if header is None:
        return
    if "," in header:
        if not header.strip().startswith("bytes="):
            raise bad_request(f"unsupported Range header {header[:80]!r}")
        if size == 0:
            raise ApiError(416, "BAD_REQUEST", "range not satisfiable: blob is 0 bytes")
        return
    m = _RANGE_RE.fullmatch(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        raise bad_request(f"unsupported Range header {header[:80]!r}")
    start, end = m.group(1), m.group(2)
    if start and end and int(end) < int(start):
        raise bad_request(f"unsupported Range header {header[:80]!r}")
    if (start and int(start) >= size) or (not start and (int(end) == 0 or size == 0)):
        raise ApiError(416, "BAD_REQUEST", f"range not satisfiable: blob is {size} bytes")


# --------------------------------------------------------------------------- bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


_DIGEST = json_pattern(Kind.DIGEST)


class FileItem(_Body):
    path: str = Field(max_length=4096)
    sha256: str = Field(pattern=json_pattern(Kind.HEX64))
    size: int = Field(ge=0, le=MAX_JSON_INT)


def _card_tenant(card: dict[str, Any]) -> dict[str, Any]:
    if not Kind.TENANT.accepts(card.get("tenant_id")):
        raise ValueError(f"card.tenant_id must be {Kind.TENANT.value}")
    return card


Card = Annotated[
    dict[str, Any],
    AfterValidator(_card_tenant),
    WithJsonSchema(
        {
            "type": "object",
            "required": ["tenant_id"],
            "properties": {"tenant_id": {"type": "string", "pattern": json_pattern(Kind.TENANT)}},
            "additionalProperties": True,
        }
    ),
]
"""The model card, stored exactly as sent: the Registry itself needs only ``tenant_id``
(tenancy); the rest is the gate's business."""


class PublishBody(_Body):
    version: str = Field(pattern=json_pattern(Kind.NAME))
    artifact_digest: str = Field(pattern=_DIGEST)
    artifact_size: int = Field(ge=0, le=MAX_JSON_INT)
    kind: Literal["file", "directory"]
    format: str | None = Field(default=None, max_length=64)
    files: list[FileItem] = Field(max_length=100_000)
    policy_digest: str = Field(pattern=_DIGEST)
    git_sha: str = Field(max_length=256)
    container_digest: str = Field(max_length=256)
    dataset_snapshot: str = Field(max_length=1024)
    signature_digest: str | None = Field(default=None, pattern=_DIGEST)
    attestation_digest: str | None = Field(default=None, pattern=_DIGEST)
    artifact_uri: str | None = Field(default=None, pattern=oa.ARTIFACT_URI_PATTERN, max_length=512)
    card: Card


class StageBody(_Body):
    stage: Literal["Staging", "Approved", "Archived"]


class AliasBody(_Body):
    version: str = Field(pattern=json_pattern(Kind.NAME))
    change_ticket: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=nonblank_pattern()
    )


class ReasonBody(_Body):
    # At least one non-blank character: the stored reason is the stripped text, and the
    # served schema must say so with the server's own set (identifiers.BLANK_CHARS).
    reason: str = Field(min_length=1, max_length=2000, pattern=nonblank_pattern())


class EmptyBody(_Body):
    pass


# --------------------------------------------------------------------------- app


def current_caller(request: Request) -> Caller:
    """Both factors: the mTLS peer identity (put in scope state by server.py's protocol)
    and a verified bearer token."""
    state = request.scope.get("state") or {}
    verifier: TokenVerifier = request.app.state.verifier
    return authenticate(
        verifier,
        request.headers.get("authorization"),
        state.get(PEER_STATE_KEY),
        state.get(PEER_X5T_KEY),
    )


Auth = Annotated[Caller, Depends(current_caller)]


Name = Annotated[str, PathParam(max_length=128)]
HexDigest = Annotated[str, PathParam(min_length=64, max_length=64)]
"""Path parameters; their patterns (registry/openapi.py) are checked by the handlers with
``trustload.identifiers`` (fullmatch), which answer 400 like every other bad parameter."""


def create_app(
    *,
    store: Store,
    blobs: BlobBackend,
    verifier: TokenVerifier,
    max_blob_bytes: int,
    max_json_bytes: int,
) -> Any:
    """The ASGI application (FastAPI wrapped in the body-size limit)."""
    app = FastAPI(
        title="trustload Registry",
        version="1",
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,  # the Registry never redirects: a client must not follow
        description="Model Registry (Z5). mTLS required on every route; OIDC bearer "
        'tokens on /v1. Errors are {"error": {"code", "message"}} '
        "(docs/registry-api.md).",
    )
    app.state.verifier = verifier
    _install_error_handlers(app)

    def require(who: Caller, role: str, action: str, name: str | None, version: str | None) -> None:
        try:
            who.require(role, action)
        except ApiError:
            store.log_denied(who, action, name, version)
            raise

    _read_routes(app, store, blobs)
    _blob_upload_route(app, store, blobs, require, max_blob_bytes)
    _governance_routes(app, store, blobs, require)
    app.openapi = lambda: oa.contract_openapi(app)  # type: ignore[method-assign]
    return BodyLimit(app, max_json=max_json_bytes, max_blob=max_blob_bytes)


Require = Callable[[Caller, str, str, "str | None", "str | None"], None]


def _install_error_handlers(app: FastAPI) -> None:
    """Every error in the one ``{"error": ...}`` shape. Parameters (path, query, header)
    that fail validation are 400, a JSON body that fails its schema 422."""

    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(req: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, ApiError):  # FastAPI wraps errors raised reading a body
            cause = exc.__cause__
            return _error_response(cause.status, cause.code, cause.message)
        code = _STATUS_CODES.get(exc.status_code, "BAD_REQUEST")
        if exc.status_code == 405:
            allow = allowed_methods(app, req.scope)
            return _error_response(
                405,
                code,
                f"method {req.method} not allowed here; allowed: {', '.join(allow)}",
                {"Allow": ", ".join(allow)},
            )
        return _error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errs
        )
        in_body = any(tuple(e.get("loc", ()))[:1] == ("body",) for e in errs)
        return _error_response(422 if in_body else 400, "BAD_REQUEST", problems[:2000])

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error_response(500, "INTERNAL", f"internal error ({type(exc).__name__})")


def _read_routes(app: FastAPI, store: Store, blobs: BlobBackend) -> None:
    @app.get("/healthz", operation_id="healthz", responses=oa.ok(oa.Health))
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    read = {**oa.ok(oa.VersionRecordOut), **oa.errors(*oa.READ)}

    @app.get("/v1/models/{name}/resolve/{ref}", operation_id="resolveRef", responses=read)
    def resolve(name: Name, ref: Name, who: Auth) -> dict[str, Any]:
        return store.resolve(name, ref, who)

    @app.get(
        "/v1/models/{name}/versions",
        operation_id="listVersions",
        responses={**oa.ok(oa.VersionList), **oa.errors(*oa.READ)},
    )
    def list_versions(name: Name, who: Auth) -> dict[str, Any]:
        return {"versions": store.list_versions(name, who)}

    @app.get("/v1/models/{name}/versions/{version}", operation_id="getVersion", responses=read)
    def get_version(name: Name, version: Name, who: Auth) -> dict[str, Any]:
        return store.get_version(name, version, who)

    @app.get(
        "/v1/models/{name}/versions/{version}/stage-history",
        operation_id="getStageHistory",
        responses={**oa.ok(oa.StageHistory), **oa.errors(*oa.READ)},
    )
    def stage_history(name: Name, version: Name, who: Auth) -> dict[str, Any]:
        return {"history": store.stage_history(name, version, who)}

    def read_blob(hexdigest: str, request: Request, who: Caller) -> Response:
        check_hex(hexdigest)
        # Ownership first: another tenant's blob and a missing one take the same path.
        size = blobs.size(hexdigest) if store.blob_visible(hexdigest, who) else None
        if size is None:
            raise not_found(f"no blob sha256:{hexdigest}")
        range_header = request.headers.get("range")
        check_range(range_header, size)
        return blobs.serve(hexdigest, size, range_header, head=request.method == "HEAD")

    blob_path = "/v1/blobs/sha256/{hexdigest}"

    @app.get(
        blob_path,
        operation_id="getBlob",
        response_class=Response,
        responses=oa.blob_read_responses(head=False),
    )
    def get_blob(hexdigest: HexDigest, request: Request, who: Auth) -> Response:
        return read_blob(hexdigest, request, who)

    @app.head(
        blob_path,
        operation_id="headBlob",
        response_class=Response,
        responses=oa.blob_read_responses(head=True),
    )
    def head_blob(hexdigest: HexDigest, request: Request, who: Auth) -> Response:
        return read_blob(hexdigest, request, who)


def _blob_upload_route(
    app: FastAPI, store: Store, blobs: BlobBackend, require: Require, max_blob_bytes: int
) -> None:
    @app.post(
        "/v1/blobs/sha256/{hexdigest}",
        status_code=201,
        operation_id="uploadBlob",
        responses={
            **oa.ok(oa.BlobStored, 200),
            **oa.ok(oa.BlobStored, 201),
            **oa.errors(400, 401, 403, 408, 411, 413, 503),
        },
        openapi_extra={"requestBody": {"required": True, "content": oa.BLOB_BYTES}},
    )
    async def upload_blob(
        hexdigest: HexDigest, request: Request, response: Response, who: Auth
    ) -> dict[str, Any]:
        await run_in_threadpool(require, who, "publisher", "upload_blob", None, None)
        check_hex(hexdigest)
        declared = parse_decimal(request.headers.get("content-length"))
        if declared is None:
            raise bad_request("Content-Length is required for blob uploads", 411)
        if declared > max_blob_bytes:
            raise bad_request(f"blob larger than {max_blob_bytes} bytes", 413)
        stored = await blobs.ingest(hexdigest, request.stream(), declared)
        # 201/200 says whether *this tenant* held the blob before, never whether the
        # bytes were already stored for someone else.
        created = await run_in_threadpool(store.record_upload, who, hexdigest, stored.size)
        response.status_code = 201 if created else 200
        return {"digest": f"sha256:{hexdigest}", "size": stored.size}


def _governance_routes(app: FastAPI, store: Store, blobs: BlobBackend, require: Require) -> None:
    record = oa.ok(oa.VersionRecordOut)
    govern = {**record, **oa.errors(*oa.GOVERN)}

    @app.post(
        "/v1/models/{name}/versions",
        status_code=201,
        operation_id="publishVersion",
        responses={**oa.ok(oa.VersionRecordOut, 201), **oa.errors(*oa.GOVERN, 503)},
    )
    def publish(name: Name, body: PublishBody, who: Auth) -> dict[str, Any]:
        require(who, "publisher", "publish", name, body.version)
        req = PublishRequest(
            version=body.version,
            artifact_digest=body.artifact_digest,
            artifact_size=body.artifact_size,
            kind=body.kind,
            format=body.format,
            files=files_from_json([f.model_dump() for f in body.files]),
            policy_digest=body.policy_digest,
            git_sha=body.git_sha,
            container_digest=body.container_digest,
            dataset_snapshot=body.dataset_snapshot,
            signature_digest=body.signature_digest,
            attestation_digest=body.attestation_digest,
            card=body.card,
            artifact_uri=body.artifact_uri,
        )
        return store.publish(name, req, who, blobs.size, blobs.read_small)

    version_path = "/v1/models/{name}/versions/{version}"

    @app.put(f"{version_path}/stage", operation_id="setStage", responses=govern)
    def set_stage(name: Name, version: Name, body: StageBody, who: Auth) -> dict[str, Any]:
        require(who, "admin", "stage", name, version)
        return store.set_stage(name, version, body.stage, who)

    @app.put(
        "/v1/models/{name}/aliases/{alias}",
        operation_id="setAlias",
        responses={**oa.ok(oa.AliasOut), **oa.errors(*oa.GOVERN)},
    )
    def set_alias(name: Name, alias: Name, body: AliasBody, who: Auth) -> dict[str, Any]:
        require(who, "admin", "alias", name, body.version)
        return store.set_alias(name, alias, body.version, body.change_ticket, who)

    @app.post(f"{version_path}/revoke", operation_id="revokeVersion", responses=govern)
    def revoke(name: Name, version: Name, body: ReasonBody, who: Auth) -> dict[str, Any]:
        require(who, "admin", "revoke", name, version)
        return store.revoke(name, version, body.reason, who)

    @app.post(f"{version_path}/quarantine", operation_id="quarantineVersion", responses=govern)
    def quarantine(name: Name, version: Name, body: ReasonBody, who: Auth) -> dict[str, Any]:
        require(who, "admin", "quarantine", name, version)
        return store.quarantine(name, version, body.reason, who)

    @app.post(f"{version_path}/release", operation_id="releaseVersion", responses=govern)
    def release(
        name: Name, version: Name, who: Auth, body: EmptyBody | None = None
    ) -> dict[str, Any]:
        del body
        require(who, "admin", "release", name, version)
        return store.release(name, version, who)

    @app.get(
        "/v1/governance-log",
        operation_id="getGovernanceLog",
        responses={**oa.ok(oa.GovernanceLog), **oa.errors(400, 401, 403)},
    )
    def governance_log(
        who: Auth,
        model: Annotated[str | None, Query(max_length=128)] = None,
        after: Annotated[int, Query(ge=0, le=MAX_JSON_INT)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    ) -> dict[str, Any]:
        if model is not None:
            check_name(model, "model")
        require(who, "admin", "read_governance_log", model, None)
        return {"events": store.governance_log(who, model=model, after=after, limit=limit)}


def open_blobs(data_dir: Path, blob_store: str | None, oci: OciConfig) -> BlobBackend:
    """The configured blob backend: the filesystem store in ``data_dir`` by default."""
    if blob_store is None:
        return BlobStore(data_dir)
    from trustload.registry.blobs_oci import OciBlobStore, parse_blob_store

    return OciBlobStore(parse_blob_store(blob_store), oci)


def build_app(
    data_dir: Path,
    database_url: str,
    verifier: TokenVerifier,
    *,
    max_blob_bytes: int,
    max_json_bytes: int,
    blob_store: str | None = None,
    oci: OciConfig | None = None,
) -> Any:
    """Open the store (migrating the schema) and the blob store, and build the app."""
    from trustload.registry.store import make_engine, migrate

    blobs = open_blobs(data_dir, blob_store, oci or OciConfig())
    engine = make_engine(database_url)
    migrate(engine)
    return create_app(
        store=Store(engine),
        blobs=blobs,
        verifier=verifier,
        max_blob_bytes=max_blob_bytes,
        max_json_bytes=max_json_bytes,
    )
