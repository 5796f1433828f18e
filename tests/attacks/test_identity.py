"""Identity attacks: who signed the model and its provenance, and who asks for it.
Signing keys and certificates, validity windows, and the workload's OIDC token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.attacks.helpers import Arena, Gate, assert_denied, card, with_gate
from tests.crypto.helpers import cert_bundle, make_ca, make_leaf, pem
from trustload.crypto.keys import generate_keypair
from trustload.decision import ReasonCode

INTEROP = Path("/work/shared/interop")
KEYLESS = INTEROP / "model-transparency/scripts/tests/v1.1.0-sigstore"
KEYLESS_ROOT = INTEROP / "sigstore-python/trusted_roots/production.trusted_root.json"
KEYLESS_IDENTITY = "stefanb@us.ibm.com"
KEYLESS_ISSUER = "https://sigstore.verify.ibm.com/oauth2"


def stranger_key(arena: Arena) -> Path:
    key, _pub = generate_keypair(arena.workdir() / "stranger")
    return key


def claims(arena: Arena, **over: Any) -> dict[str, Any]:
    return arena.env.claims(**over)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --------------------------------------------------------------------- signing keys


def test_identity_wrong_signing_key(arena: Arena, gate: Gate) -> None:
    """The model signed by a key the gate does not trust (provenance still genuine).

    Attack: identity / signing key
    """
    name = arena.name()
    path = arena.model_file()
    arena.publish(
        name, "1", path, signature=arena.sign(path, sig_key=stranger_key(arena)).signature
    )
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir
    )


def test_identity_attestation_by_wrong_key(arena: Arena, gate: Gate) -> None:
    """Provenance attestation signed by an untrusted key (model signature genuine).

    Attack: identity / signing key
    """
    name = arena.name()
    path = arena.model_file()
    forged = arena.sign(path, att_key=stranger_key(arena)).attestation
    arena.publish(name, "1", path, attestation=forged)
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.ATTESTATION_INVALID, cache_dir=gate.cache_dir
    )


def test_identity_model_unsigned(arena: Arena, gate: Gate) -> None:
    """A version published without any signature bundle.

    Attack: identity / signing key
    """
    name = arena.name()
    arena.publish(name, "1", arena.model_file(), signature=None)
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.SIGNATURE_MISSING, cache_dir=gate.cache_dir
    )


def test_identity_no_attestation(arena: Arena, gate: Gate) -> None:
    """A version published without a provenance attestation.

    Attack: identity / provenance
    """
    name = arena.name()
    arena.publish(name, "1", arena.model_file(), attestation=None)
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.ATTESTATION_MISSING, cache_dir=gate.cache_dir
    )


# ------------------------------------------------------------ certificate identities


def _statement_of(arena: Arena, path: Path) -> dict[str, Any]:
    bundle = json.loads(arena.sign(path).signature)
    return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))


def _cert_case(arena: Arena, gate: Gate, *, other_ca: bool, email: str, expired: bool) -> Any:
    """Publish a model signed by a private-CA leaf; the gate trusts ``ca`` + identity."""
    work = arena.workdir()
    ca_key, ca = make_ca(work, "release-ca")
    signer_ca_key, signer_ca = make_ca(work, "rogue-ca") if other_ca else (ca_key, ca)
    now = datetime.now(UTC)
    window = (now - timedelta(days=3), now - timedelta(days=1)) if expired else (None, None)
    leaf_key, leaf = make_leaf(
        signer_ca_key, signer_ca, email=email, not_before=window[0], not_after=window[1]
    )
    (work / "ca.pem").write_bytes(pem(ca))
    name = arena.name()
    path = arena.model_file()
    bundle = cert_bundle(leaf_key, [leaf], _statement_of(arena, path))
    arena.publish(name, "1", path, signature=bundle)
    cfg = with_gate(
        gate.cfg, ca_certs=[work / "ca.pem"], certificate_identity="release@example.com"
    )
    return gate.run(f"{name}@production", cfg)


def test_identity_certificate_chain_control_permits(arena: Arena, gate: Gate) -> None:
    """Control: the right CA and the pinned identity are permitted (so denials mean something)."""
    result = _cert_case(arena, gate, other_ca=False, email="release@example.com", expired=False)
    assert result.decision.permitted, result.decision.to_json()


def test_identity_certificate_of_other_ca(arena: Arena, gate: Gate) -> None:
    """A signing certificate with the pinned identity, issued by another CA.

    Attack: identity / certificate
    """
    result = _cert_case(arena, gate, other_ca=True, email="release@example.com", expired=False)
    assert_denied(result, ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir)


def test_identity_certificate_wrong_identity(arena: Arena, gate: Gate) -> None:
    """A certificate from the trusted CA for another identity than the pinned one.

    Attack: identity / certificate
    """
    result = _cert_case(arena, gate, other_ca=False, email="intern@example.com", expired=False)
    assert_denied(result, ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir)


def test_identity_certificate_expired(arena: Arena, gate: Gate) -> None:
    """A signing certificate of the pinned identity that expired yesterday.

    Attack: identity / certificate
    """
    result = _cert_case(arena, gate, other_ca=False, email="release@example.com", expired=True)
    assert_denied(result, ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir)


def _keyless(arena: Arena, gate: Gate, identity: str, issuer: str) -> Any:
    """A real Sigstore keyless model signature (public-good, offline proof) published as is."""
    if not KEYLESS.is_dir():
        pytest.skip("interop vectors not present")
    model = arena.workdir() / "keyless"
    shutil.copytree(KEYLESS, model, ignore=shutil.ignore_patterns("ignore-me", "model.sig"))
    name = arena.name()
    signed = arena.sign(model)
    arena.publish(name, "1", model, signed=signed, signature=(KEYLESS / "model.sig").read_bytes())
    cfg = with_gate(
        gate.cfg,
        certificate_identity=identity,
        certificate_oidc_issuer=issuer,
        trusted_root=KEYLESS_ROOT,
    )
    return gate.run(f"{name}@production", cfg)


def test_identity_keyless_control_permits(arena: Arena, gate: Gate) -> None:
    """Control: the genuine keyless identity and issuer are permitted."""
    result = _keyless(arena, gate, KEYLESS_IDENTITY, KEYLESS_ISSUER)
    assert result.decision.permitted, result.decision.to_json()


def test_identity_keyless_wrong_oidc_issuer(arena: Arena, gate: Gate) -> None:
    """A keyless signature whose certificate names another OIDC issuer than the pinned one.

    Attack: identity / certificate
    """
    result = _keyless(arena, gate, KEYLESS_IDENTITY, "https://accounts.google.com")
    assert_denied(result, ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir)


def test_identity_keyless_wrong_identity(arena: Arena, gate: Gate) -> None:
    """A keyless signature by another identity than the pinned one (same issuer).

    Attack: identity / certificate
    """
    result = _keyless(arena, gate, "release@example.com", KEYLESS_ISSUER)
    assert_denied(result, ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir)


# ------------------------------------------------------------------ validity windows


def test_identity_attestation_expired(arena: Arena, gate: Gate) -> None:
    """A provenance attestation whose signed notAfter passed an hour ago.

    Attack: identity / validity
    """
    name = arena.name()
    path = arena.model_file()
    past = datetime.now(UTC) - timedelta(hours=1)
    signed = arena.sign(path, not_before=past - timedelta(days=1), not_after=past)
    arena.publish(name, "1", path, signed=signed)
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.ATTESTATION_EXPIRED, cache_dir=gate.cache_dir
    )


def test_identity_attestation_not_yet_valid(arena: Arena, gate: Gate) -> None:
    """A provenance attestation whose signed notBefore is tomorrow.

    Attack: identity / validity
    """
    name = arena.name()
    path = arena.model_file()
    soon = datetime.now(UTC) + timedelta(days=1)
    signed = arena.sign(path, not_before=soon, not_after=soon + timedelta(days=30))
    arena.publish(name, "1", path, signed=signed)
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.ATTESTATION_EXPIRED, cache_dir=gate.cache_dir
    )


def test_identity_revalidate_by_passed(arena: Arena, gate: Gate) -> None:
    """A model card whose `revalidate_by` date is in the past.

    Attack: identity / validity
    """
    name = arena.name()
    arena.publish(
        name, "1", arena.model_file(), card_doc=card(revalidate_by="2025-01-01T00:00:00Z")
    )
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.REVALIDATION_OVERDUE, cache_dir=gate.cache_dir
    )


# ---------------------------------------------------------------------------- tokens


def test_identity_token_expired(arena: Arena, gate: Gate) -> None:
    """A genuine workload token that expired ten minutes ago.

    Attack: identity / token
    """
    name = arena.good()
    now = int(time.time())
    token = arena.env.raw_token(claims(arena, iat=now - 900, nbf=now - 900, exp=now - 600))
    assert_denied(
        gate.run(f"{name}@production", gate.token_cfg(token)),
        ReasonCode.AUTH_FAILED,
        cache_dir=gate.cache_dir,
    )


def test_identity_token_not_yet_valid(arena: Arena, gate: Gate) -> None:
    """A token whose `nbf` is an hour ahead (pre-minted for later use).

    Attack: identity / token
    """
    name = arena.good()
    now = int(time.time())
    token = arena.env.raw_token(claims(arena, nbf=now + 3600, iat=now, exp=now + 3700))
    assert_denied(
        gate.run(f"{name}@production", gate.token_cfg(token)),
        ReasonCode.AUTH_FAILED,
        cache_dir=gate.cache_dir,
    )


def test_identity_token_wrong_audience(arena: Arena, gate: Gate) -> None:
    """A genuine token minted for another audience (another service's token replayed).

    Attack: identity / token
    """
    name = arena.good()
    token = arena.env.raw_token(claims(arena, aud="https://billing.internal"))
    assert_denied(
        gate.run(f"{name}@production", gate.token_cfg(token)),
        ReasonCode.AUTH_FAILED,
        cache_dir=gate.cache_dir,
    )


def test_identity_token_other_issuer(arena: Arena, gate: Gate) -> None:
    """A token from the attacker's own issuer (own key, own `iss`).

    Attack: identity / token
    """
    name = arena.good()
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        claims(arena, iss="https://issuer.attacker.example"),
        key,
        algorithm="ES256",
        headers={"kid": arena.env.issuer.kid},
    )
    assert_denied(
        gate.run(f"{name}@production", gate.token_cfg(token)),
        ReasonCode.AUTH_FAILED,
        cache_dir=gate.cache_dir,
    )


def test_identity_token_alg_none(arena: Arena, gate: Gate) -> None:
    """An unsigned token (`alg: none`) with perfect claims.

    Attack: identity / token
    """
    name = arena.good()
    header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": arena.env.issuer.kid}).encode())
    token = f"{header}.{b64url(json.dumps(claims(arena)).encode())}."
    assert_denied(
        gate.run(f"{name}@production", gate.token_cfg(token)),
        ReasonCode.AUTH_FAILED,
        cache_dir=gate.cache_dir,
    )


def test_identity_token_hs256_with_public_key_as_secret(arena: Arena, gate: Gate) -> None:
    """HS256 token keyed with the issuer's *public* JWKS (algorithm confusion).

    Attack: identity / token
    """
    name = arena.good()
    jwks = (arena.env.root / "oidc" / "jwks.json").read_bytes()
    public_jwk = json.dumps(json.loads(jwks)["keys"][0]).encode()
    header = b64url(
        json.dumps({"alg": "HS256", "typ": "JWT", "kid": arena.env.issuer.kid}).encode()
    )
    body = b64url(json.dumps(claims(arena)).encode())
    for secret in (jwks, public_jwk):
        sig = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        token = f"{header}.{body}.{b64url(sig)}"
        assert_denied(
            gate.run(f"{name}@production", gate.token_cfg(token)),
            ReasonCode.AUTH_FAILED,
            cache_dir=gate.cache_dir,
        )


def test_identity_token_overlong_lifetime(arena: Arena, gate: Gate) -> None:
    """A genuine but long-lived (one day) token, the kind that leaks and lingers.

    Attack: identity / token
    """
    name = arena.good()
    token = arena.env.raw_token(claims(arena, exp=int(time.time()) + 86_400))
    assert_denied(
        gate.run(f"{name}@production", gate.token_cfg(token)),
        ReasonCode.AUTH_FAILED,
        cache_dir=gate.cache_dir,
    )


def test_identity_token_for_tenant_b(arena: Arena, gate: Gate) -> None:
    """A valid consumer token of tenant B asking for tenant A's model.

    Attack: identity / tenancy
    """
    name = arena.good()
    token = arena.env.raw_token(claims(arena, tenant_id="B"))
    assert_denied(
        gate.run(f"{name}@production", gate.token_cfg(token)),
        ReasonCode.NOT_FOUND,
        cache_dir=gate.cache_dir,
    )


def test_identity_tenant_b_admin_token_reaches_tenant_a_model(arena: Arena, gate: Gate) -> None:
    """A tenant-B admin token asks for tenant A's model (admins once saw every tenant).

    Admins govern their own tenant only, so the Registry answers as for a model nobody
    has; the gate's ABAC (TENANT_MISMATCH) stays behind it for a record that lies about
    its tenant (test_tuf.py::test_tuf_mix_card_of_other_model).

    Attack: identity / tenancy
    """
    name = arena.good()
    token = arena.env.raw_token(claims(arena, tenant_id="B", role="admin"))
    assert_denied(
        gate.run(f"{name}@production", gate.token_cfg(token)),
        ReasonCode.NOT_FOUND,
        cache_dir=gate.cache_dir,
    )


def test_identity_purpose_not_allowed(arena: Arena, gate: Gate) -> None:
    """A token whose purposes are not among the model card's allowed purposes.

    Attack: identity / tenancy
    """
    name = arena.good()
    token = arena.env.raw_token(claims(arena, purpose=["marketing"]))
    assert_denied(
        gate.run(f"{name}@production", gate.token_cfg(token)),
        ReasonCode.PURPOSE_NOT_ALLOWED,
        cache_dir=gate.cache_dir,
    )
