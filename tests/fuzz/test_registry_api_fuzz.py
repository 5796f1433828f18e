"""Fuzz the Registry's HTTP API over real mTLS (the real ``trustload registry serve``
process of the arena): paths, query strings, JSON bodies, raw uploads, Range and
Authorization headers. Every answer must be a documented status with the documented
error shape, never a 5xx; the process must stay up; and a fuzzed publish that the
Registry accepts must still never be permitted by the gate."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.attacks.helpers import Arena, Gate
from tests.fuzz.strategies import FUZZ_NET, json_values

segments = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
) | st.sampled_from(["..", ".", "%00", "production", "1", "a" * 300, "m/../../x"])
ALLOWED = {200, 201, 206, 400, 401, 403, 404, 405, 409, 411, 413, 416, 422}


def check(resp: httpx.Response) -> None:
    if resp.status_code == 307:  # Starlette's trailing-slash redirect: same origin only
        location = resp.headers["location"]
        assert location.startswith("/") or location.startswith(str(resp.url.copy_with(path="/")))
        return
    assert resp.status_code in ALLOWED, (resp.status_code, resp.text[:300])
    if resp.status_code >= 400 and resp.status_code != 405 and resp.request.method != "HEAD":
        err = resp.json()["error"]
        assert isinstance(err["code"], str) and isinstance(err["message"], str)


@pytest.fixture(scope="module")
def known(arena: Arena) -> str:
    return arena.good()


@pytest.fixture(scope="module")
def clients(arena: Arena) -> Any:
    consumer = arena.reg.consumer()
    admin = arena.reg.admin()
    yield consumer, admin
    consumer.close()
    admin.close()


def path(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


@FUZZ_NET
@given(name=segments, ref=segments, which=st.sampled_from(["resolve", "versions", "history"]))
def test_read_paths(arena: Arena, clients: Any, name: str, ref: str, which: str) -> None:
    consumer, _ = clients
    if which == "resolve":
        url = path("v1", "models", name, "resolve", ref)
    elif which == "versions":
        url = path("v1", "models", name, "versions", ref)
    else:
        url = path("v1", "models", name, "versions", ref, "stage-history")
    check(consumer.get(url))


@FUZZ_NET
@given(
    body=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {},
            optional={
                "version": st.text(max_size=20) | json_values,
                "artifact_digest": st.text(max_size=80),
                "artifact_size": st.integers(-1, 2**70),
                "kind": st.sampled_from(["file", "directory", "x"]),
                "files": json_values,
                "card": json_values,
                "signature_digest": st.text(max_size=80) | st.none(),
            },
        ),
    )
)
def test_publish_bodies(arena: Arena, gate: Gate, clients: Any, known: str, body: Any) -> None:
    _, admin = clients
    resp = admin.post(path("v1", "models", known, "versions"), json=body)
    check(resp)
    if resp.status_code == 201:  # whatever got in can never be permitted
        version = resp.json()["version"]
        assert not gate.run(f"{known}@{version}").decision.permitted


@FUZZ_NET
@given(
    action=st.sampled_from(["stage", "alias", "revoke", "quarantine", "release"]),
    version=segments,
    body=json_values,
)
def test_governance_bodies(
    arena: Arena, clients: Any, known: str, action: str, version: str, body: Any
) -> None:
    _, admin = clients
    if action == "stage":
        resp = admin.put(path("v1", "models", known, "versions", version, "stage"), json=body)
    elif action == "alias":
        resp = admin.put(path("v1", "models", known, "aliases", version), json=body)
    else:
        resp = admin.post(path("v1", "models", known, "versions", version, action), json=body)
    check(resp)


@FUZZ_NET
@given(
    data=st.binary(max_size=2048),
    claimed=st.booleans(),
    rng=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
    | st.sampled_from(["bytes=0-", "bytes=5-2", "bytes=-1", "bytes=99999999-", "bytes=0-0,1-1"]),
)
def test_blob_upload_and_range(
    arena: Arena, clients: Any, data: bytes, claimed: bool, rng: str
) -> None:
    _, admin = clients
    real = hashlib.sha256(data).hexdigest()
    hexd = real if claimed else hashlib.sha256(data + b"x").hexdigest()
    up = admin.post(f"/v1/blobs/sha256/{hexd}", content=data)
    check(up)
    assert (up.status_code in (200, 201)) == claimed, up.text
    try:
        got = admin.get(f"/v1/blobs/sha256/{real}", headers={"Range": rng})
    except httpx.LocalProtocolError:
        return  # a header value the HTTP client itself refuses to send

    check(got)
    if got.status_code == 200:
        assert hashlib.sha256(got.content).hexdigest() == real


@FUZZ_NET
@given(
    auth=st.text(max_size=200) | st.sampled_from(["Bearer ", "Bearer a.b.c", "Basic eDp5"]),
    query=st.dictionaries(st.sampled_from(["model", "after", "limit", "x"]), st.text(max_size=20)),
)
def test_auth_header_and_query(arena: Arena, known: str, auth: str, query: dict[str, str]) -> None:
    try:
        headers = {"Authorization": auth}
        httpx.Headers(headers)
    except Exception:
        return
    with arena.reg.client(role="admin", token="") as raw:
        try:
            resp = raw.get("/v1/governance-log", params=query, headers=headers)
        except (httpx.LocalProtocolError, UnicodeEncodeError):
            return  # a header the HTTP client itself refuses to send
        check(resp)
        if not auth.startswith("Bearer ") or auth.count(".") != 2:
            assert resp.status_code == 401


def test_registry_survived_the_fuzzing(arena: Arena) -> None:
    with arena.reg.client(token="") as c:
        assert c.get("/healthz").json() == {"status": "ok"}
    assert arena.reg.process.poll() is None
