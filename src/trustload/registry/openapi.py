"""The served ``/openapi.json`` is the contract of docs/registry-api.md, not FastAPI's guess.

Why a module: FastAPI documents what it can infer (200 plus a ``{"detail": ...}`` 422 on
every route), while the Registry answers ``{"error": {"code", "message"}}`` with the
statuses below. Each route declares its statuses here, parameter patterns come from
:mod:`trustload.identifiers` (the very patterns the server enforces), and the security
requirement states both factors (mTLS and a bearer token). A client generated from this
document, or a fuzzer such as schemathesis, then sees exactly what the server does.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from trustload.identifiers import MAX_JSON_INT, Kind, json_pattern

ERROR_REF = {"$ref": "#/components/schemas/Error"}
_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    206: "Partial content (one byte range)",
    400: "BAD_REQUEST: malformed parameter, header or request",
    401: "AUTH_FAILED: token missing, invalid or expired",
    403: "FORBIDDEN: the token's role may not do this",
    404: "NOT_FOUND: no such model, version, alias or blob, or another tenant's",
    408: "BAD_REQUEST: the upload stalled",
    409: "CONFLICT: exists already, revoked is final, or alias clashes with a version",
    411: "BAD_REQUEST: Content-Length is required",
    413: "BAD_REQUEST: body larger than the configured bound",
    416: "BAD_REQUEST: range not satisfiable",
    422: "BAD_REQUEST: the JSON body does not match its schema",
    503: "UNAVAILABLE: the blob store (an OCI registry) cannot answer; nothing was stored",
}

READ = (400, 401, 404)
GOVERN = (400, 401, 403, 404, 409, 413, 422)


class ErrorDetail(BaseModel):
    code: Literal[
        "AUTH_FAILED",
        "FORBIDDEN",
        "NOT_FOUND",
        "METHOD_NOT_ALLOWED",
        "CONFLICT",
        "BAD_REQUEST",
        "UNAVAILABLE",
        "INTERNAL",
    ]
    message: str


class Error(BaseModel):
    """Every non-2xx answer (docs/registry-api.md "Errors")."""

    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


class FileOut(BaseModel):
    path: str
    sha256: str = Field(pattern=json_pattern(Kind.HEX64))
    size: int = Field(ge=0, le=MAX_JSON_INT)


_DIGEST = json_pattern(Kind.DIGEST)
ARTIFACT_URI_PATTERN = (
    r"^oci://[A-Za-z0-9.\[\]:-]+(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)+@sha256:[0-9a-f]{64}$"
)
"""``oci://HOST[:PORT]/REPO@sha256:<hex>`` (the exact grammar: trustload.oci.reference)."""


class VersionRecordOut(BaseModel):
    """The version record (docs/registry-api.md "The version record")."""

    name: str = Field(pattern=json_pattern(Kind.NAME))
    version: str = Field(pattern=json_pattern(Kind.NAME))
    stage: Literal["Staging", "Approved", "Archived"]
    artifact_digest: str = Field(pattern=_DIGEST)
    artifact_size: int = Field(ge=0, le=MAX_JSON_INT)
    kind: Literal["file", "directory"]
    format: str | None
    policy_digest: str = Field(pattern=_DIGEST)
    git_sha: str
    container_digest: str
    dataset_snapshot: str
    revoked: bool
    revoked_reason: str | None
    quarantined: bool
    quarantine_reason: str | None
    card: dict[str, Any]
    signature_digest: str | None = Field(pattern=_DIGEST)
    attestation_digest: str | None = Field(pattern=_DIGEST)
    files: list[FileOut]
    artifact_uri: str | None = Field(pattern=ARTIFACT_URI_PATTERN, max_length=512)
    alias: str | None = Field(pattern=json_pattern(Kind.NAME))
    alias_revision: int | None = Field(ge=1)
    change_ticket: str | None
    publisher: str
    created_at: str
    served_at: str


class VersionList(BaseModel):
    versions: list[VersionRecordOut]


class StageChange(BaseModel):
    stage: Literal["Staging", "Approved", "Archived"]
    previous: Literal["Staging", "Approved", "Archived"] | None
    actor: str
    at: str


class StageHistory(BaseModel):
    history: list[StageChange]


class AliasOut(BaseModel):
    alias: str = Field(pattern=json_pattern(Kind.NAME))
    version: str = Field(pattern=json_pattern(Kind.NAME))
    revision: int = Field(ge=1)
    change_ticket: str | None


class BlobStored(BaseModel):
    digest: str = Field(pattern=_DIGEST)
    size: int = Field(ge=0, le=MAX_JSON_INT)


class GovernanceEvent(BaseModel):
    id: int = Field(ge=1, le=MAX_JSON_INT)
    at: str
    actor: str
    action: str
    model: str | None
    version: str | None
    detail: dict[str, Any]


class GovernanceLog(BaseModel):
    events: list[GovernanceEvent]


class Health(BaseModel):
    status: Literal["ok"]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for a route: each status with the Error body."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": Error, "description": _DESCRIPTIONS[status]}
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "required": True}
            }
        out[status] = entry
    return out


def ok(model: type[BaseModel], status: int = 200) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model, "description": _DESCRIPTIONS[status]}}


BLOB_BYTES = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_BLOB_HEADERS = {
    "ETag": {"schema": {"type": "string"}, "required": True},
    "Content-Length": {"schema": {"type": "string"}, "required": True},
}


def blob_read_responses(*, head: bool) -> dict[int | str, dict[str, Any]]:
    """GET answers the bytes (200 or 206 with Content-Range); HEAD the same headers, no body."""
    content = {} if head else BLOB_BYTES
    partial_headers = dict(_BLOB_HEADERS, **{"Content-Range": {"schema": {"type": "string"}}})
    out: dict[int | str, dict[str, Any]] = {
        200: {"description": "The blob", "content": content, "headers": _BLOB_HEADERS},
        206: {"description": _DESCRIPTIONS[206], "content": content, "headers": partial_headers},
    }
    for status, entry in errors(400, 401, 404, 416, 503).items():
        out[status] = {"description": entry["description"]} if head else entry
        if head and "headers" in entry:
            out[status]["headers"] = entry["headers"]
    return out


PARAMETER_PATTERNS = {
    "name": Kind.NAME,
    "ref": Kind.NAME,
    "version": Kind.NAME,
    "alias": Kind.NAME,
    "hexdigest": Kind.HEX64,
    "model": Kind.NAME,
}
"""Path/query parameter name -> the identifier it must be (enforced by the handlers)."""

SECURITY_SCHEMES = {
    "mTLS": {
        "type": "mutualTLS",
        "description": "A client certificate from the Registry's CA (the TLS handshake "
        "fails without one). Every route needs it.",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An OIDC token (ES256/RS256) from the configured issuer.",
    },
}
MTLS_ONLY: list[dict[str, list[str]]] = [{"mTLS": []}]
MTLS_AND_BEARER: list[dict[str, list[str]]] = [{"mTLS": [], "bearer": []}]


def _fix_operation(op: dict[str, Any], path: str) -> None:
    for param in op.get("parameters", ()):
        kind = PARAMETER_PATTERNS.get(param["name"])
        schema = param.setdefault("schema", {})
        if not param.get("required") and "anyOf" in schema:  # ``str | None``: absent, not null
            strings = [s for s in schema.pop("anyOf") if s.get("type") != "null"]
            schema.update(strings[0])
        if kind is not None:
            schema["pattern"] = json_pattern(kind)
    responses: dict[str, Any] = op["responses"]
    has_body = "requestBody" in op and "application/json" in op["requestBody"].get("content", {})
    if not has_body:
        responses.pop("422", None)
    for status, entry in responses.items():
        if not status.startswith("2"):
            for media in entry.get("content", {}).values():
                media["schema"] = ERROR_REF
    op["security"] = MTLS_ONLY if path == "/healthz" else MTLS_AND_BEARER


def contract_openapi(app: FastAPI) -> dict[str, Any]:
    """Build (once) the document ``/openapi.json`` serves."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for path, item in doc["paths"].items():
        for op in item.values():
            _fix_operation(op, path)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = SECURITY_SCHEMES
    doc["security"] = MTLS_AND_BEARER
    app.openapi_schema = doc
    return doc
