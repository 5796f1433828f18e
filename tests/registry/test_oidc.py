"""TokenVerifier in-process: JWKS by URL (with rotation), RS256, key-type pinning."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from trustload.config import OIDCConfig
from trustload.errors import UsageError
from trustload.oidc import TokenError, TokenVerifier, jwks_document
from trustload.pki import new_key

ISS, AUD = "https://idp.example", "trustload-registry"


def _claims(**over):
    now = int(time.time())
    c = {
        "iss": ISS,
        "aud": AUD,
        "sub": "w",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "tenant_id": "A",
        "purpose": ["p"],
        "role": "consumer",
    }
    c.update(over)
    return c


@pytest.fixture
def jwks_server(dev_env, monkeypatch):
    """An HTTPS JWKS endpoint (the dev-env server certificate) whose keys can rotate."""
    state = {"doc": b"{}"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state["doc"])))
            self.end_headers()
            self.wfile.write(state["doc"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pki = dev_env.root / "pki"
    ctx.load_cert_chain(pki / "registry.pem", pki / "registry.key")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/jwks.json", state
    finally:
        server.shutdown()
        server.server_close()


def test_jwks_url_and_rotation(jwks_server, dev_env):
    url, state = jwks_server
    ca = dev_env.ca
    old, new = new_key(), new_key()
    state["doc"] = json.dumps(jwks_document(old, "k1")).encode()
    verifier = TokenVerifier(OIDCConfig(issuer=ISS, audience=AUD, jwks_url=url, jwks_ca=ca))
    assert verifier.verify(jwt.encode(_claims(), old, "ES256", headers={"kid": "k1"})).sub == "w"

    # The IdP rotates: a token with the new kid triggers one (rate-limited) refetch.
    state["doc"] = json.dumps(jwks_document(new, "k2")).encode()
    rotated = jwt.encode(_claims(), new, "ES256", headers={"kid": "k2"})
    verifier.JWKS_REFRESH_MIN_INTERVAL = 0.0
    assert verifier.verify(rotated).sub == "w"
    with pytest.raises(TokenError, match="unknown key"):
        verifier.verify(jwt.encode(_claims(), old, "ES256", headers={"kid": "k1"}))


def test_jwks_url_must_be_https():
    with pytest.raises(UsageError):
        TokenVerifier(
            OIDCConfig(
                issuer=ISS, audience=AUD, jwks_url="http://idp.example/jwks", jwks_ca=Path("x")
            )
        )


def test_jwks_url_trusts_only_jwks_ca(jwks_server, dev_env, tmp_path, monkeypatch):
    """The JWKS endpoint's certificate (signed by the dev CA) is trusted through
    ``[oidc] jwks_ca`` only: another CA there is refused even when the process-wide
    trust store (SSL_CERT_FILE) would vouch for it, and no jwks_ca is a config error."""
    from trustload.config import load_registry_config
    from trustload.pki import new_ca

    url, state = jwks_server
    key = new_key()
    state["doc"] = json.dumps(jwks_document(key, "k1")).encode()
    monkeypatch.setenv("SSL_CERT_FILE", str(dev_env.ca))  # the "system store" trusts it
    other = tmp_path / "other-ca.pem"
    new_ca("some other CA").write(other, tmp_path / "other-ca.key")
    with pytest.raises(UsageError, match="cannot fetch JWKS"):
        TokenVerifier(OIDCConfig(issuer=ISS, audience=AUD, jwks_url=url, jwks_ca=other))
    ok = TokenVerifier(OIDCConfig(issuer=ISS, audience=AUD, jwks_url=url, jwks_ca=dev_env.ca))
    assert ok.verify(jwt.encode(_claims(), key, "ES256", headers={"kid": "k1"})).sub == "w"

    text = dev_env.registry_config.read_text()
    assert 'jwks_file = "oidc/jwks.json"' in text
    no_ca = tmp_path / "registry-no-ca.toml"
    no_ca.write_text(text.replace('jwks_file = "oidc/jwks.json"', f'jwks_url = "{url}"'))
    with pytest.raises(UsageError, match="jwks_ca"):
        load_registry_config(no_ca)
    with_ca = tmp_path / "registry-ca.toml"
    with_ca.write_text(
        text.replace(
            'jwks_file = "oidc/jwks.json"', f'jwks_url = "{url}"\njwks_ca = "{dev_env.ca}"'
        )
    )
    assert load_registry_config(with_ca).oidc.jwks_ca == dev_env.ca


def test_rs256_and_key_type_pinning(tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = new_key()
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    rsa_jwk.update(kid="r1", use="sig")
    doc = {"keys": [*jwks_document(ec_key, "e1")["keys"], rsa_jwk]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(doc))
    verifier = TokenVerifier(OIDCConfig(issuer=ISS, audience=AUD, jwks_file=path))

    assert verifier.verify(jwt.encode(_claims(), rsa_key, "RS256", headers={"kid": "r1"}))
    assert verifier.verify(jwt.encode(_claims(), ec_key, "ES256", headers={"kid": "e1"}))
    # A token naming the EC key but claiming RS256 (or the reverse) is refused up front.
    with pytest.raises(TokenError, match="key type"):
        verifier.verify(jwt.encode(_claims(), rsa_key, "RS256", headers={"kid": "e1"}))
    with pytest.raises(TokenError, match="key type"):
        verifier.verify(jwt.encode(_claims(), ec_key, "ES256", headers={"kid": "r1"}))
    # Several keys and no kid: ambiguous, refused.
    with pytest.raises(TokenError, match="no kid"):
        verifier.verify(jwt.encode(_claims(), ec_key, "ES256"))
    # Configured for ES256 only: RS256 is refused whatever the key.
    es_only = TokenVerifier(
        OIDCConfig(issuer=ISS, audience=AUD, jwks_file=path, algorithms=["ES256"])
    )
    with pytest.raises(TokenError, match="not allowed"):
        es_only.verify(jwt.encode(_claims(), rsa_key, "RS256", headers={"kid": "r1"}))


@pytest.mark.parametrize(
    "doc", [b"not json", b'{"keys": 3}', b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}']
)
def test_unusable_jwks_is_a_usage_error(tmp_path, doc):
    path = tmp_path / "jwks.json"
    path.write_bytes(doc)
    with pytest.raises(UsageError):
        TokenVerifier(OIDCConfig(issuer=ISS, audience=AUD, jwks_file=path))


def test_bound_token_confirmation_is_checked(tmp_path):
    """RFC 8705 in the verifier: a bound token needs the matching peer thumbprint; a
    confirmation method the Registry cannot check is refused, never ignored."""
    from trustload.oidc import cert_thumbprint
    from trustload.pki import new_ca

    key = new_key()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_document(key, "k1")))
    verifier = TokenVerifier(OIDCConfig(issuer=ISS, audience=AUD, jwks_file=path))
    ca = new_ca("peer")
    ca.write(tmp_path / "peer.pem", tmp_path / "peer.key")
    pem = (tmp_path / "peer.pem").read_bytes()
    from cryptography.hazmat.primitives import serialization

    der = ca.cert.public_bytes(serialization.Encoding.DER)
    x5t = cert_thumbprint(pem)
    assert x5t == cert_thumbprint(der) and "=" not in x5t and len(x5t) == 43

    def tok(**over):
        return jwt.encode(_claims(**over), key, "ES256", headers={"kid": "k1"})

    assert verifier.verify(tok(cnf={"x5t#S256": x5t}), peer_x5t=x5t).x5t_s256 == x5t
    for bad_peer in (None, cert_thumbprint(b"other")):
        with pytest.raises(TokenError, match="another client certificate"):
            verifier.verify(tok(cnf={"x5t#S256": x5t}), peer_x5t=bad_peer)
    for cnf in ("x", {"jkt": "abc"}, {"x5t#S256": x5t, "jkt": "a"}, {"x5t#S256": 5}):
        with pytest.raises(TokenError, match="cnf"):
            verifier.verify(tok(cnf=cnf), peer_x5t=x5t)
    assert verifier.verify(tok(), peer_x5t=x5t).x5t_s256 is None
    strict = TokenVerifier(
        OIDCConfig(issuer=ISS, audience=AUD, jwks_file=path, require_bound_tokens=True)
    )
    with pytest.raises(TokenError, match="require_bound_tokens"):
        strict.verify(tok(), peer_x5t=x5t)
