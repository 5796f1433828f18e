"""TokenVerifier in-process: JWKS by URL (with rotation), RS256, key-type pinning."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
import time

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
    monkeypatch.setenv("SSL_CERT_FILE", str(dev_env.ca))
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/jwks.json", state
    finally:
        server.shutdown()
        server.server_close()


def test_jwks_url_and_rotation(jwks_server):
    url, state = jwks_server
    old, new = new_key(), new_key()
    state["doc"] = json.dumps(jwks_document(old, "k1")).encode()
    verifier = TokenVerifier(OIDCConfig(issuer=ISS, audience=AUD, jwks_url=url))
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
        TokenVerifier(OIDCConfig(issuer=ISS, audience=AUD, jwks_url="http://idp.example/jwks"))


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
