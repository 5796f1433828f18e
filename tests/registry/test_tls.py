"""The channel: mTLS required at the handshake, our CA only, TLS 1.2 minimum (R2.1, R5)."""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.registry import upload_blob
from trustload.pki import issue_client_cert, new_ca, spiffe_id

pytestmark = pytest.mark.postgres_ok


def _addr(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def _raw_exchange(url: str, ctx: ssl.SSLContext) -> bytes:
    """Handshake, send a request, return what comes back (raises on TLS failure)."""
    host, port = _addr(url)
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = tls.recv(4096)
            if not chunk:
                return data
            data += chunk


def test_healthz_over_mtls(shared_registry):
    with shared_registry.client(token="") as c:
        resp = c.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


def test_openapi_document(shared_registry):
    with shared_registry.client(token="") as c:
        doc = c.get("/openapi.json").json()
    assert "/v1/models/{name}/resolve/{ref}" in doc["paths"]
    assert "/v1/blobs/sha256/{hexdigest}" in doc["paths"]


@pytest.mark.parametrize("tls_max", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_no_client_certificate_is_refused_at_handshake(shared_registry, tls_max):
    ctx = shared_registry.env.ssl_context(None)
    ctx.maximum_version = tls_max
    with pytest.raises((ssl.SSLError, ConnectionError)):
        data = _raw_exchange(shared_registry.url, ctx)
        # TLS 1.3 finishes the client side first; the server then aborts with an alert
        # (raised above) or closes: either way no HTTP answer ever arrives.
        assert data == b""
        raise ConnectionError("closed without answering")


def test_no_client_certificate_via_httpx(shared_registry):
    ctx = shared_registry.env.ssl_context(None)
    refused = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)
    with httpx.Client(base_url=shared_registry.url, verify=ctx) as c, pytest.raises(refused):
        c.get("/healthz")


def test_client_certificate_from_another_ca_is_refused(shared_registry, tmp_path):
    rogue_ca = new_ca("rogue CA")
    rogue = issue_client_cert(rogue_ca, spiffe_id("serving", "gate"))
    rogue.write(tmp_path / "rogue.pem", tmp_path / "rogue.key")
    for tls_max in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = shared_registry.env.ssl_context(None)
        ctx.load_cert_chain(tmp_path / "rogue.pem", tmp_path / "rogue.key")
        ctx.maximum_version = tls_max
        with pytest.raises((ssl.SSLError, ConnectionError)):
            if _raw_exchange(shared_registry.url, ctx) == b"":
                raise ConnectionError("closed without answering")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_is_refused(shared_registry):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(shared_registry.env.ca)
    cert, key = shared_registry.env.cert_paths("gate")
    ctx.load_cert_chain(cert, key)
    try:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS < 1.2")
    with pytest.raises(ssl.SSLError):
        _raw_exchange(shared_registry.url, ctx)


def test_server_context_pins_tls12_and_cert_required(dev_env):
    from trustload.config import load_registry_config
    from trustload.registry.server import server_ssl_context

    ctx = server_ssl_context(load_registry_config(dev_env.registry_config).server)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED


def test_peer_identity_and_token_subject_are_the_actor(shared_registry):
    env = shared_registry.env
    tok = env.token(role="publisher", sub="ci-publisher")
    with shared_registry.client(role="publisher", who="admin", token=tok) as c:
        digest = upload_blob(c, b"identity test blob")
    with shared_registry.admin() as c:
        events = c.get("/v1/governance-log").json()["events"]
    mine = [e for e in events if e["detail"].get("digest") == digest]
    assert mine and mine[0]["action"] == "upload_blob"
    assert mine[0]["actor"] == "spiffe://trustload.local/ns/governance/sa/admin | ci-publisher"


def test_expired_client_certificate_is_refused(shared_registry, tmp_path):
    from datetime import UTC, datetime, timedelta

    from trustload.pki import load_issued

    pki = shared_registry.env.root / "pki"
    ca = load_issued(pki / "ca.pem", pki / "ca.key")
    now = datetime.now(UTC)
    old = issue_client_cert(
        ca,
        spiffe_id("serving", "gate"),
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(days=1),
    )
    old.write(tmp_path / "old.pem", tmp_path / "old.key")
    for tls_max in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = shared_registry.env.ssl_context(None)
        ctx.load_cert_chain(tmp_path / "old.pem", tmp_path / "old.key")
        ctx.maximum_version = tls_max
        with pytest.raises((ssl.SSLError, ConnectionError)):
            if _raw_exchange(shared_registry.url, ctx) == b"":
                raise ConnectionError("closed without answering")
    # The same CA's valid certificate still works (the refusal was about validity).
    fresh = issue_client_cert(ca, spiffe_id("serving", "other"))
    fresh.write(tmp_path / "new.pem", tmp_path / "new.key")
    ctx = shared_registry.env.ssl_context(None)
    ctx.load_cert_chain(tmp_path / "new.pem", tmp_path / "new.key")
    assert _raw_exchange(shared_registry.url, ctx).startswith(b"HTTP/1.1 200")


def test_plain_http_and_garbage_do_not_hurt_the_server(shared_registry):
    host, port = _addr(shared_registry.url)
    for payload in (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\xff\xff" + b"A" * 64,
    ):
        with socket.create_connection((host, port), timeout=10) as raw:
            raw.sendall(payload)
            try:
                answer = raw.recv(4096)
            except ConnectionError:
                answer = b""
            assert b"200 OK" not in answer and b"status" not in answer
    with shared_registry.client(token="") as c:
        assert c.get("/healthz").status_code == 200
