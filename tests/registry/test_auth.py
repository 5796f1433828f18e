"""Bearer tokens (R2.1, R5 clock): every refusal is 401 AUTH_FAILED, over real mTLS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from trustload.config import DevIssuerConfig
from trustload.devenv import DEV_AUDIENCE, DEV_ISSUER, DEV_KID
from trustload.oidc import issuer_key
from trustload.pki import new_key, write_key

pytestmark = pytest.mark.postgres_ok


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**over):
    now = int(time.time())
    base = {
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": "spiffe://trustload.local/ns/serving/sa/gate",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "tenant_id": "A",
        "purpose": ["credit_scoring"],
        "role": "consumer",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def _unsigned(header: dict, claims: dict, secret: bytes | None) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


def _bad_tokens(env, tmp_path):
    now = int(time.time())
    other_key = tmp_path / "other.key"
    write_key(other_key, new_key())
    stranger = DevIssuerConfig(
        private_key=other_key, kid="stranger", issuer="https://evil.example", audience=DEV_AUDIENCE
    )
    same_kid_other_key = DevIssuerConfig(
        private_key=other_key, kid=DEV_KID, issuer=DEV_ISSUER, audience=DEV_AUDIENCE
    )
    jwks = json.loads((env.root / "oidc" / "jwks.json").read_text())
    public_pem = jwt.PyJWK.from_dict(jwks["keys"][0]).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    good = env.raw_token(_claims())
    head, _, sig = good.split(".")
    tampered = f"{head}.{_b64(json.dumps(_claims(role='admin')).encode())}.{sig}"
    return {
        "expired": env.raw_token(_claims(iat=now - 900, nbf=now - 900, exp=now - 600)),
        "wrong audience": env.raw_token(_claims(aud="someone-else")),
        "wrong issuer claim": env.raw_token(_claims(iss="https://evil.example")),
        "unknown issuer key": jwt.encode(
            _claims(iss="https://evil.example"),
            issuer_key(stranger),
            algorithm="ES256",
            headers={"kid": "stranger"},
        ),
        "known kid, foreign key": jwt.encode(
            _claims(),
            issuer_key(same_kid_other_key),
            algorithm="ES256",
            headers={"kid": DEV_KID},
        ),
        "over-long lifetime": env.raw_token(_claims(exp=now + 3600 + 120)),
        "not yet valid": env.raw_token(_claims(nbf=now + 600, exp=now + 900)),
        "issued in the future": env.raw_token(_claims(iat=now + 600, nbf=now, exp=now + 900)),
        "missing exp": env.raw_token(_claims(exp=None)),
        "missing iat": env.raw_token(_claims(iat=None)),
        "missing nbf": env.raw_token(_claims(nbf=None)),
        "missing tenant": env.raw_token(_claims(tenant_id=None)),
        "unknown role": env.raw_token(_claims(role="root")),
        "alg none": _unsigned({"alg": "none", "typ": "JWT", "kid": DEV_KID}, _claims(), None),
        "HS256 with the public key": _unsigned(
            {"alg": "HS256", "typ": "JWT", "kid": DEV_KID}, _claims(), public_pem
        ),
        "garbage": "not.a.token",
        "tampered payload": tampered,
    }


def test_good_token_is_accepted(shared_registry):
    with shared_registry.consumer() as c:
        resp = c.get("/v1/models/absent/resolve/1")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "NOT_FOUND"


def test_bad_tokens_are_refused_with_auth_failed(shared_registry, tmp_path):
    env = shared_registry.env
    failures = []
    for label, token in _bad_tokens(env, tmp_path).items():
        with shared_registry.client(token=token) as c:
            resp = c.get("/v1/models/absent/resolve/1")
        if resp.status_code != 401 or resp.json()["error"]["code"] != "AUTH_FAILED":
            failures.append((label, resp.status_code, resp.text))
        assert resp.headers.get("www-authenticate", "").startswith("Bearer")
    assert failures == []


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer " + "a" * 9000])
def test_missing_or_malformed_authorization(shared_registry, header):
    with shared_registry.client(token="") as c:
        headers = {"Authorization": header} if header else {}
        resp = c.get("/v1/models/absent/versions", headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "AUTH_FAILED"


def test_verifier_refuses_hs256_even_if_configured(dev_env):
    """Configuration cannot re-enable symmetric algorithms: only ES256/RS256 exist here."""
    from trustload.config import load_registry_config
    from trustload.errors import UsageError
    from trustload.oidc import TokenVerifier

    oidc = load_registry_config(dev_env.registry_config).oidc
    with pytest.raises(UsageError):
        TokenVerifier(oidc.model_copy(update={"algorithms": ["HS256", "none"]}))
