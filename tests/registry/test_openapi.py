"""The served /openapi.json is the contract of docs/registry-api.md: every status each
route sends, the real ``{"error": ...}`` body, parameter patterns from the one identifier
grammar, both security factors, blob media types and distinct operationIds. And what it
promises holds against the live server (a small client driven only by the document)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.registry import RunningRegistry, publish_bytes
from trustload.identifiers import MAX_JSON_INT, Kind, json_pattern

DOC = Path(__file__).resolve().parents[2] / "docs" / "registry-api.md"
BLOB = "/v1/blobs/sha256/{hexdigest}"
VERSION = "/v1/models/{name}/versions/{version}"
GOVERN = {200, 400, 401, 403, 404, 409, 413, 422}
EXPECTED: dict[tuple[str, str], set[int]] = {
    ("get", "/healthz"): {200},
    ("get", "/v1/models/{name}/resolve/{ref}"): {200, 400, 401, 404},
    ("get", "/v1/models/{name}/versions"): {200, 400, 401, 404},
    ("post", "/v1/models/{name}/versions"): {201, 400, 401, 403, 404, 409, 413, 422, 503},
    ("get", VERSION): {200, 400, 401, 404},
    ("get", f"{VERSION}/stage-history"): {200, 400, 401, 404},
    ("get", BLOB): {200, 206, 400, 401, 404, 416, 503},
    ("head", BLOB): {200, 206, 400, 401, 404, 416, 503},
    ("post", BLOB): {200, 201, 400, 401, 403, 408, 411, 413, 503},
    ("put", f"{VERSION}/stage"): GOVERN,
    ("put", "/v1/models/{name}/aliases/{alias}"): GOVERN,
    ("post", f"{VERSION}/revoke"): GOVERN,
    ("post", f"{VERSION}/quarantine"): GOVERN,
    ("post", f"{VERSION}/release"): GOVERN,
    ("get", "/v1/governance-log"): {200, 400, 401, 403},
}
PARAM_KINDS = {"name": Kind.NAME, "ref": Kind.NAME, "version": Kind.NAME, "alias": Kind.NAME}
PARAM_KINDS |= {"model": Kind.NAME, "hexdigest": Kind.HEX64}


@pytest.fixture(scope="module")
def doc(shared_registry: RunningRegistry) -> dict[str, Any]:
    with shared_registry.client(token="") as c:  # mTLS only, like /healthz
        resp = c.get("/openapi.json")
    assert resp.status_code == 200
    return dict(resp.json())


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m, p): op for p, item in doc["paths"].items() for m, op in item.items()}


def test_every_route_lists_exactly_the_statuses_it_sends(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    assert set(ops) == set(EXPECTED)
    for key, op in ops.items():
        assert {int(s) for s in op["responses"]} == EXPECTED[key], key
        has_json_body = "application/json" in op.get("requestBody", {}).get("content", {})
        assert ("422" in op["responses"]) == has_json_body, key


def test_errors_have_the_real_error_schema_not_fastapis_detail(doc: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in json.dumps(doc)
    # FastAPI's error body is {"detail": [...]}; the only "detail" left is the governance
    # event's own field.
    with_detail = {
        name
        for name, s in doc["components"]["schemas"].items()
        if "detail" in s.get("properties", {})
    }
    assert with_detail == {"GovernanceEvent"}
    schemas = doc["components"]["schemas"]
    assert schemas["Error"]["required"] == ["error"]
    assert schemas["Error"]["additionalProperties"] is False
    detail = schemas["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message"}
    # The codes docs/registry-api.md documents ("`CODE` (status: ..."), no more, no less.
    errors_doc = DOC.read_text().split("## Errors", 1)[1].split("\n## ", 1)[0]
    assert set(detail["properties"]["code"]["enum"]) == set(
        re.findall(r"`([A-Z_]+)` \(", errors_doc)
    )
    for key, op in operations(doc).items():
        for status, resp in op["responses"].items():
            if status.startswith("2"):
                continue
            if key[0] == "head":
                assert "content" not in resp, key  # HEAD answers carry no body
                continue
            assert resp["content"] == {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
            }, (key, status)
            if status == "401":
                assert resp["headers"]["WWW-Authenticate"]["required"] is True


def test_parameters_carry_the_enforced_patterns_and_bounds(doc: dict[str, Any]) -> None:
    seen = set()
    for key, op in operations(doc).items():
        for param in op.get("parameters", ()):
            schema = param["schema"]
            if param["name"] in PARAM_KINDS:
                assert schema["type"] == "string", (key, param)
                assert schema["pattern"] == json_pattern(PARAM_KINDS[param["name"]]), key
                seen.add(param["name"])
            else:
                assert schema["type"] == "integer", (key, param)
                assert schema["minimum"] >= 0 and schema["maximum"] <= MAX_JSON_INT, key
    assert seen == set(PARAM_KINDS)
    log = operations(doc)[("get", "/v1/governance-log")]
    bounds = {
        p["name"]: (p["schema"]["minimum"], p["schema"]["maximum"])
        for p in log["parameters"]
        if p["name"] != "model"
    }
    assert bounds == {"after": (0, MAX_JSON_INT), "limit": (1, 1000)}
    schemas = doc["components"]["schemas"]
    publish = schemas["PublishBody"]["properties"]
    assert publish["version"]["pattern"] == json_pattern(Kind.NAME)
    assert publish["artifact_digest"]["pattern"] == json_pattern(Kind.DIGEST)
    assert publish["artifact_size"]["maximum"] == MAX_JSON_INT
    assert publish["card"]["properties"]["tenant_id"]["pattern"] == json_pattern(Kind.TENANT)
    assert schemas["FileItem"]["properties"]["sha256"]["pattern"] == json_pattern(Kind.HEX64)


def test_security_schemes_state_both_factors(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["mTLS"]["type"] == "mutualTLS"
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    for (method, path), op in operations(doc).items():
        expected = [{"mTLS": []}] if path == "/healthz" else [{"mTLS": [], "bearer": []}]
        assert op["security"] == expected, (method, path)


def test_blob_media_types_and_distinct_operation_ids(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    ids = [op["operationId"] for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert ops[("get", BLOB)]["operationId"] == "getBlob"
    assert ops[("head", BLOB)]["operationId"] == "headBlob"
    binary = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    assert ops[("get", BLOB)]["responses"]["200"]["content"] == binary
    assert ops[("get", BLOB)]["responses"]["206"]["content"] == binary
    assert ops[("post", BLOB)]["requestBody"]["content"] == binary
    assert ops[("post", BLOB)]["requestBody"]["required"] is True
    assert (
        "content" not in ops[("head", BLOB)]["responses"]["200"]
        or not (ops[("head", BLOB)]["responses"]["200"]["content"])
    )


def _url(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


def test_a_client_driven_by_the_document_gets_what_it_promises(
    doc: dict[str, Any], shared_registry: RunningRegistry
) -> None:
    """For each GET/HEAD operation: a request built from the document only (pattern-valid
    values, its security), and the answer's status and body match what it lists."""
    from jsonschema import Draft202012Validator

    data = b"document-driven client"
    hexdigest = hashlib.sha256(data).hexdigest()
    with shared_registry.admin() as c:
        assert publish_bytes(c, "doc-client", "1", data).status_code in (201, 409)
    values = {"name": "doc-client", "ref": "1", "version": "1", "hexdigest": hexdigest}
    components = {"components": doc["components"]}
    for (method, path), op in operations(doc).items():
        if method not in ("get", "head"):
            continue
        with shared_registry.admin() as c:
            resp = c.request(method, _url(path, values))
        listed = op["responses"].get(str(resp.status_code))
        assert listed is not None, (method, path, resp.status_code)
        assert resp.status_code < 300, (method, path, resp.text)
        media = resp.headers.get("content-type", "").split(";")[0]
        if method == "head":
            assert resp.content == b""
            continue
        assert media in listed["content"], (method, path, media)
        if media == "application/json":
            schema = {**listed["content"][media]["schema"], **components}
            Draft202012Validator(schema).validate(resp.json())
        else:
            assert resp.content == data
