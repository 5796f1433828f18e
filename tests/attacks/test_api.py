"""Attacks a third-party API fuzzer (schemathesis) found on the Registry's HTTP surface:
look-alike identifiers with a trailing newline, integers beyond int64, 405 answers
without ``Allow``. Each is replayed here against the live Registry over mTLS, asserting
the exact status, error code and headers, and that nothing was created."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.attacks.helpers import Arena
from tests.fuzz.strategies import FUZZ_NET
from tests.support.registry import POLICY_DIGEST, publish_bytes, upload_blob
from trustload.identifiers import MAX_JSON_INT

CONTROL = st.sampled_from(["\n", "\r", "\r\n", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028"])


def assert_api_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Exactly this status and error code, in the contract's ``{"error": ...}`` shape."""
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    return dict(body["error"])


def _p(text: str) -> str:
    return quote(text, safe="")


@pytest.fixture(scope="module")
def admin(arena: Arena) -> Any:
    with arena.reg.admin() as c:
        yield c


# Valid names of every shape the grammar allows (dots, dashes, underscores), made unique.
NAMES = st.from_regex(re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}", re.ASCII), fullmatch=True)


@settings(FUZZ_NET, max_examples=25)
@given(prefix=NAMES, bad=CONTROL, where=st.sampled_from(["name", "version", "alias"]))
def test_api_identifier_with_trailing_newline(
    arena: Arena, admin: Any, prefix: str, bad: str, where: str
) -> None:
    """A model name, version or alias ending in a newline (``risk\\n``, ``prod\\n``): it
    used to become a second model/alias that looks identical in every log.

    Attack: api / look-alike identifier
    """
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    if where == "name":
        resp = publish_bytes(admin, _p(name + bad), "1", b"look-alike name")
        assert_api_error(resp, 400, "BAD_REQUEST")
        # Reads of the look-alike are refused as malformed, not answered as a model.
        got = admin.get(f"/v1/models/{_p(name + bad)}/versions")
        assert_api_error(got, 400, "BAD_REQUEST")
        assert admin.get(f"/v1/models/{name}/versions").status_code == 404  # nothing created
    elif where == "version":
        resp = publish_bytes(admin, name, "1" + bad, b"look-alike version")
        assert_api_error(resp, 422, "BAD_REQUEST")
        assert admin.get(f"/v1/models/{name}/versions").status_code == 404
    else:
        assert publish_bytes(admin, name, "1", b"real model " + name.encode()).status_code == 201
        resp = admin.put(f"/v1/models/{name}/aliases/{_p('prod' + bad)}", json={"version": "1"})
        assert_api_error(resp, 400, "BAD_REQUEST")
        look = admin.get(f"/v1/models/{name}/resolve/{_p('prod' + bad)}")
        assert_api_error(look, 400, "BAD_REQUEST")
        assert admin.get(f"/v1/models/{name}/resolve/prod").status_code == 404  # no alias made
        log = admin.get("/v1/governance-log", params={"model": name}).json()["events"]
        assert [e["action"] for e in log] == ["publish"]


@settings(FUZZ_NET, max_examples=15)
@given(prefix=NAMES)
def test_api_every_valid_name_is_accepted(admin: Any, prefix: str) -> None:
    """The other half of the property: what the grammar allows, the API serves."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    assert publish_bytes(admin, name, prefix, b"valid " + name.encode()).status_code == 201
    assert admin.get(f"/v1/models/{name}/versions/{prefix}").json()["name"] == name


def test_api_identifiers_in_bodies_and_tokens(arena: Arena, admin: Any) -> None:
    """Newlines smuggled through bodies and token claims: an alias target ``1\\n``, a card
    ``tenant_id`` ``A\\n``, a token whose tenant, purpose or subject ends in a newline.

    Attack: api / look-alike identifier
    """
    name = f"risk-{uuid.uuid4().hex[:8]}"
    assert publish_bytes(admin, name, "1", b"model " + name.encode()).status_code == 201
    resp = admin.put(f"/v1/models/{name}/aliases/production", json={"version": "1\n"})
    assert_api_error(resp, 422, "BAD_REQUEST")
    card = {"tenant_id": "A\n", "domain": "credit", "purpose": {"allowed": ["credit_scoring"]}}
    resp = publish_bytes(admin, name, "2", b"card smuggle", card=card)
    assert "tenant_id" in assert_api_error(resp, 422, "BAD_REQUEST")["message"]
    env = arena.env
    for token in (
        env.token(role="admin", tenant="A\n"),
        env.token(role="admin", purposes=("credit_scoring\n",)),
        env.token(role="admin", domain="credit\n"),
        env.token(role="admin", sub="spiffe://trustload.local/x\nforged | admin"),
    ):
        with arena.reg.client(role="admin", token=token) as c:
            got = c.get(f"/v1/models/{name}/versions")
        assert_api_error(got, 401, "AUTH_FAILED")
        assert got.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "params",
    [
        {"after": str(2**63)},  # SQLite int64 overflow: was a 500
        {"after": str(2**64 + 1)},
        {"after": str(MAX_JSON_INT + 1)},
        {"after": "-1"},
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": str(2**63)},
        {"after": "1e3"},
    ],
)
def test_api_integer_parameter_out_of_range(admin: Any, params: dict[str, str]) -> None:
    """``GET /v1/governance-log?after=9223372036854775808`` and friends: every integer
    parameter is bounded, so an out-of-range one is a 400, never a 500.

    Attack: api / integer overflow
    """
    resp = admin.get("/v1/governance-log", params=params)
    assert_api_error(resp, 400, "BAD_REQUEST")


@pytest.mark.parametrize("after", [2**31 - 1, 2**31, 5447078745756, MAX_JSON_INT])
def test_api_integer_parameter_at_the_bound_is_served(admin: Any, after: int) -> None:
    """In range means served: beyond INTEGER (ids on PostgreSQL) used to be a DataError
    there, a 500 that schemathesis found (``make test-postgres`` runs this)."""
    resp = admin.get("/v1/governance-log", params={"after": str(after), "limit": "1000"})
    assert resp.status_code == 200 and resp.json() == {"events": []}


@pytest.mark.parametrize("field", ["artifact_size", "files.size"])
def test_api_integer_body_field_out_of_range(admin: Any, field: str) -> None:
    """Sizes beyond the bound in a publish body: 422 (schema), never a database overflow.

    Attack: api / integer overflow
    """
    name = f"big-{uuid.uuid4().hex[:8]}"
    digest = upload_blob(admin, b"x")
    files = [{"path": "m", "sha256": digest[7:], "size": 2**63 if field == "files.size" else 1}]
    body = {
        "version": "1",
        "artifact_digest": digest,
        "artifact_size": 2**63 if field == "artifact_size" else 1,
        "kind": "file",
        "files": files,
        "policy_digest": POLICY_DIGEST,
        "git_sha": "0" * 40,
        "container_digest": "sha256:" + "cd" * 32,
        "dataset_snapshot": "ds",
        "card": {"tenant_id": "A"},
    }
    resp = admin.post(f"/v1/models/{name}/versions", json=body)
    assert_api_error(resp, 422, "BAD_REQUEST")
    assert admin.get(f"/v1/models/{name}/versions").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/blobs/sha256/" + "a" * 64, "GET, HEAD, POST"),
        ("PUT", "/v1/blobs/sha256/" + "a" * 64, "GET, HEAD, POST"),
        ("PATCH", "/v1/models/m/aliases/production", "PUT"),
        ("DELETE", "/v1/models/m/versions", "GET, POST"),
        ("GET", "/v1/models/m/versions/1/revoke", "POST"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/v1/governance-log", "GET"),
    ],
)
def test_api_wrong_method_answers_405_with_allow(
    admin: Any, method: str, path: str, allow: str
) -> None:
    """A method the route does not serve: RFC 9110 requires ``Allow`` on a 405, listing
    every method of the path (Starlette named only the first route's), and the error code
    says what happened (it was ``BAD_REQUEST``).

    Attack: api / protocol conformance
    """
    resp = admin.request(method, path)
    assert_api_error(resp, 405, "METHOD_NOT_ALLOWED")
    assert resp.headers["allow"] == allow
    assert resp.headers["content-type"] == "application/json"
