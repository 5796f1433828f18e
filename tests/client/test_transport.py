"""The channel to the Registry over real TLS: mTLS identities, allowlist, redirects,
retries, token re-reading, and the translation of every failure into a reason code."""

from __future__ import annotations

import socket
import ssl

import pytest

from tests.client.conftest import TOKEN
from trustload.client.api import RegistryClient
from trustload.client.transport import (
    Allowlist,
    Transport,
    build_ssl_context,
    parse_https,
    unverified_claims,
)
from trustload.decision import ReasonCode
from trustload.errors import RegistryError

HEALTH = r"/healthz"


def ok(handler):  # type: ignore[no-untyped-def]
    handler.send_json(200, {"status": "ok"})


def get_health(cfg, **kw):  # type: ignore[no-untyped-def]
    with RegistryClient(cfg, **kw) as client:
        return client.healthz()


def test_mtls_roundtrip_with_only_configured_ca(tls_server, client_cfg):
    srv = tls_server(routes=[(HEALTH, ok)])
    assert get_health(client_cfg(srv.url)) == {"status": "ok"}


def test_no_client_certificate_is_auth_failed(tls_server, client_cfg, pki):
    srv = tls_server(routes=[(HEALTH, ok)])
    cfg = client_cfg(srv.url)
    ctx = build_ssl_context(pki.ca.pem, None, None)
    with pytest.raises(RegistryError) as err:
        get_health(cfg, ssl_context=ctx)
    assert err.value.code is ReasonCode.AUTH_FAILED


def test_no_client_certificate_tls12_is_auth_failed(tls_server, client_cfg, pki):
    srv = tls_server(routes=[(HEALTH, ok)], max_version=ssl.TLSVersion.TLSv1_2)
    ctx = build_ssl_context(pki.ca.pem, None, None)
    with pytest.raises(RegistryError) as err:
        get_health(client_cfg(srv.url), ssl_context=ctx)
    assert err.value.code is ReasonCode.AUTH_FAILED


def test_client_certificate_from_another_ca_is_auth_failed(tls_server, client_cfg, pki):
    srv = tls_server(routes=[(HEALTH, ok)])
    cfg = client_cfg(srv.url, client_cert=pki.other_client.cert, client_key=pki.other_client.key)
    with pytest.raises(RegistryError) as err:
        get_health(cfg)
    assert err.value.code is ReasonCode.AUTH_FAILED


def test_server_certificate_from_untrusted_ca_is_tls_policy(tls_server, client_cfg, pki):
    srv = tls_server(routes=[(HEALTH, ok)])
    cfg = client_cfg(srv.url, ca=pki.other_ca.pem)
    with pytest.raises(RegistryError) as err:
        get_health(cfg)
    assert err.value.code is ReasonCode.TLS_POLICY


def test_server_below_tls12_is_tls_policy(pki, client_cfg):
    """A server that only speaks TLS 1.1 (where OpenSSL still allows it) or answers
    with a non-TLS byte stream is refused as TLS_POLICY."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    import threading

    def garbage() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nnot tls at all")
        conn.close()

    t = threading.Thread(target=garbage, daemon=True)
    t.start()
    try:
        with pytest.raises(RegistryError) as err:
            get_health(client_cfg(f"https://127.0.0.1:{port}"))
        assert err.value.code is ReasonCode.TLS_POLICY
    finally:
        listener.close()
        t.join(2)


def test_minimum_version_is_tls12():
    from pathlib import Path

    import certifi  # type: ignore[import-not-found, unused-ignore]

    ctx = build_ssl_context(Path(certifi.where()), None, None)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_http_url_is_not_allowed(client_cfg):
    cfg = client_cfg("http://127.0.0.1:1", allowlist=["http://127.0.0.1:1"])
    with pytest.raises(RegistryError) as err:
        get_health(cfg)
    assert err.value.code is ReasonCode.REGISTRY_NOT_ALLOWED


def test_host_not_in_allowlist(tls_server, client_cfg):
    srv = tls_server(routes=[(HEALTH, ok)])
    cfg = client_cfg(srv.url, allowlist=["https://registry.example:8443"])
    with pytest.raises(RegistryError) as err:
        get_health(cfg)
    assert err.value.code is ReasonCode.REGISTRY_NOT_ALLOWED
    assert srv.requests == []  # nothing was sent


def test_empty_allowlist_allows_nothing(tls_server, client_cfg):
    srv = tls_server(routes=[(HEALTH, ok)])
    with pytest.raises(RegistryError) as err:
        get_health(client_cfg(srv.url, allowlist=[]))
    assert err.value.code is ReasonCode.REGISTRY_NOT_ALLOWED


def test_redirect_to_another_host_is_refused(tls_server, client_cfg):
    srv = tls_server()
    other = tls_server(routes=[(HEALTH, ok)])
    evil = other.url.replace("127.0.0.1", "localhost")
    srv.route(HEALTH, lambda h: h.redirect(evil + "/healthz"))
    with pytest.raises(RegistryError) as err:
        get_health(client_cfg(srv.url))
    assert err.value.code is ReasonCode.REGISTRY_NOT_ALLOWED
    assert other.requests == []


def test_redirect_to_http_is_refused(tls_server, client_cfg):
    srv = tls_server()
    srv.route(HEALTH, lambda h: h.redirect(f"http://127.0.0.1:{srv.port}/healthz"))
    with pytest.raises(RegistryError) as err:
        get_health(client_cfg(srv.url))
    assert err.value.code is ReasonCode.REGISTRY_NOT_ALLOWED


def test_redirect_within_allowlist_is_followed(tls_server, client_cfg):
    srv = tls_server(routes=[("/v1/here", ok)])
    srv.route(HEALTH, lambda h: h.redirect("/v1/here", 307))
    assert get_health(client_cfg(srv.url)) == {"status": "ok"}


def test_allowlist_path_prefix_and_port():
    allow = Allowlist(["https://reg.example/api", "http://plain.example"])
    allow.check("https://REG.example:443/api/v1/models")
    for bad in (
        "https://reg.example/apix",
        "https://reg.example:8443/api/v1",
        "https://reg.example/other",
        "http://plain.example/",
        "https://reg.example/api/../admin",
        "https://user@reg.example/api/v1",
    ):
        with pytest.raises(RegistryError) as err:
            allow.check(bad)
        assert err.value.code is ReasonCode.REGISTRY_NOT_ALLOWED, bad
    assert parse_https("https://h").port == 443


def test_registry_down_is_unavailable_after_bounded_retries(client_cfg):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = client_cfg(f"https://127.0.0.1:{port}", retries=2)
    sleeps: list[float] = []
    transport = Transport(cfg, sleep=sleeps.append)
    with pytest.raises(RegistryError) as err:
        RegistryClient(cfg, transport=transport).healthz()
    assert err.value.code is ReasonCode.REGISTRY_UNAVAILABLE
    assert len(sleeps) == 2 and all(0 < d <= 2.0 for d in sleeps)
    assert transport.requests_sent == 3


def test_retries_503_on_get_then_succeeds(tls_server, client_cfg):
    srv = tls_server()
    calls = {"n": 0}

    def flaky(h):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] < 3:
            h.send_json(503, {"error": {"code": "UNAVAILABLE", "message": "busy"}})
        else:
            ok(h)

    srv.route(HEALTH, flaky)
    cfg = client_cfg(srv.url, retries=3)
    transport = Transport(cfg, sleep=lambda d: None)
    assert RegistryClient(cfg, transport=transport).healthz() == {"status": "ok"}
    assert calls["n"] == 3


def test_post_is_not_retried(tls_server, client_cfg):
    srv = tls_server()
    srv.route(r"/v1/models/m/versions/1/release", lambda h: h.send_json(503, {}))
    cfg = client_cfg(srv.url, retries=3)
    with pytest.raises(RegistryError) as err:
        RegistryClient(cfg, transport=Transport(cfg, sleep=lambda d: None)).release("m", "1")
    assert err.value.code is ReasonCode.REGISTRY_UNAVAILABLE
    assert len(srv.requests) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, ReasonCode.AUTH_FAILED),
        (403, ReasonCode.AUTH_FAILED),
        (404, ReasonCode.NOT_FOUND),
        (500, ReasonCode.REGISTRY_UNAVAILABLE),
        (409, ReasonCode.REGISTRY_UNAVAILABLE),
    ],
)
def test_status_codes_map_to_reason_codes(tls_server, client_cfg, status, code):
    srv = tls_server()
    srv.route(
        r"/v1/models/m/resolve/prod",
        lambda h: h.send_json(status, {"error": {"code": "X", "message": "m"}}),
    )
    cfg = client_cfg(srv.url, retries=0)
    with pytest.raises(RegistryError) as err:
        RegistryClient(cfg).resolve("m", "prod")
    assert err.value.code is code
    assert getattr(err.value, "status", None) == status


def test_token_file_is_reread_on_every_request(tls_server, client_cfg, pki):
    srv = tls_server(routes=[(r"/v1/governance-log", lambda h: h.send_json(200, {"events": []}))])
    cfg = client_cfg(srv.url)
    with RegistryClient(cfg) as client:
        client.governance_log()
        pki.token_file.write_text("rotated.token.value\n")
        client.governance_log()
    auths = [hdrs.get("Authorization") for _, _, hdrs in srv.requests]
    assert auths == [f"Bearer {TOKEN}", "Bearer rotated.token.value"]


def test_missing_token_file_is_auth_failed(tls_server, client_cfg, pki):
    srv = tls_server(routes=[(r"/v1/governance-log", lambda h: h.send_json(200, {"events": []}))])
    cfg = client_cfg(srv.url, token_file=pki.token_file.with_name("absent"))
    with pytest.raises(RegistryError) as err:
        RegistryClient(cfg).governance_log()
    assert err.value.code is ReasonCode.AUTH_FAILED
    assert srv.requests == []


def test_oversized_json_answer_is_refused(tls_server, client_cfg):
    srv = tls_server(routes=[(HEALTH, lambda h: h.send_json(200, {"x": "a" * (9 * 1024 * 1024)}))])
    with pytest.raises(RegistryError) as err:
        get_health(client_cfg(srv.url))
    assert err.value.code is ReasonCode.REGISTRY_UNAVAILABLE


def test_requester_from_token_and_spiffe_certificate(client_cfg, pki):
    cfg = client_cfg("https://127.0.0.1:1")
    who = RegistryClient(cfg).requester()
    assert (who.subject, who.tenant_id, who.purposes) == ("gate", "A", ("x",))
    assert who.caller == "spiffe://test/ns/serving/sa/gate"
    assert unverified_claims(TOKEN)["tenant_id"] == "A"
    with pytest.raises(RegistryError):
        unverified_claims("not-a-jwt")


def test_gate_turns_a_redirect_off_the_allowlist_into_a_decision(tls_server, client_cfg, tmp_path):
    """run_gate over a Registry that redirects elsewhere: a deny decision, audited."""
    import json

    from trustload.config import ClientFileConfig, GateConfig
    from trustload.gate import run_gate
    from trustload.policy import default_policy_dir

    srv = tls_server()
    srv.route(r"/v1/models/m/resolve/production", lambda h: h.redirect("https://evil.example/x"))
    cfg = ClientFileConfig(
        registry=client_cfg(srv.url),
        gate=GateConfig(
            policy_dir=default_policy_dir(),
            cache_dir=tmp_path / "cache",
            state_dir=tmp_path / "state",
            audit_log=tmp_path / "audit.jsonl",
        ),
    )
    result = run_gate(cfg, "m@production")
    assert [str(r) for r in result.decision.reasons] == ["REGISTRY_NOT_ALLOWED"]
    assert result.layout is None and result.record is None
    line = json.loads((tmp_path / "audit.jsonl").read_text())
    assert line["event"] == "startup_deny" and line["caller"] == "spiffe://test/ns/serving/sa/gate"
    assert TOKEN not in (tmp_path / "audit.jsonl").read_text()


def test_close_before_answer_is_auth_failed_until_the_certificate_was_accepted() -> None:
    """Under TLS 1.3 a refused client certificate looks like a close before the answer
    (AUTH_FAILED). Once this Registry has answered a request made with the same
    certificate, the same close is the Registry failing: REGISTRY_UNAVAILABLE."""
    import http.client

    from trustload.client.transport import translate

    closed = http.client.RemoteDisconnected("Remote end closed connection without response")
    url = "https://127.0.0.1:8443/v1/blobs/sha256/" + "a" * 64
    assert translate(closed, url, after_handshake=True).code is ReasonCode.AUTH_FAILED
    later = translate(closed, url, after_handshake=True, certificate_accepted=True)
    assert later.code is ReasonCode.REGISTRY_UNAVAILABLE
    assert "accepting this client certificate earlier" in later.message


def test_explicit_certificate_alert_stays_auth_failed_after_acceptance() -> None:
    import ssl

    from trustload.client.transport import translate

    alert = ssl.SSLError(1, "alert")
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    err = translate(alert, "https://127.0.0.1:8443/healthz", certificate_accepted=True)
    assert err.code is ReasonCode.AUTH_FAILED
