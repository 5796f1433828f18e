"""OIDC workload tokens: a local dev issuer, and strict verification (R2.1, R5 clock).

Verification is the Registry's first gate after mTLS. What it refuses, and why:

* the algorithm comes from configuration, never from the token: only ES256 / RS256,
  and the key's type must match the algorithm (so ``alg: none`` and an HS256 token
  "signed" with the public key are refused before any signature maths);
* ``iss``, ``aud``, ``sub``, ``exp``, ``nbf``, ``iat`` are required and checked with a
  small leeway (clock skew, R5);
* a token whose lifetime ``exp - iat`` exceeds ``max_token_lifetime`` is refused:
  only short-lived tokens are accepted, a stolen long-lived token is useless;
* trustload claims (``tenant_id``, ``purpose``, ``domain``, ``role``) must be well
  typed; a missing role means ``consumer``;
* a sender-constrained token (RFC 8705, ``cnf.x5t#S256``) is accepted only over a
  connection whose client certificate has that SHA-256 thumbprint, so a stolen token
  is useless without the workload's private key; ``require_bound_tokens`` refuses
  unbound ones;
* a JWKS fetched from ``jwks_url`` is trusted only through ``jwks_ca``, never the
  system trust store.

Claim names are documented in docs/registry-api.md ("Token claims").
"""

from __future__ import annotations

import functools
import json
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from trustload.config import DevIssuerConfig, DevTokenConfig, OIDCConfig
from trustload.decision import ReasonCode
from trustload.errors import RegistryError, UsageError
from trustload.identifiers import Kind, has_control, is_valid

ROLES = ("consumer", "publisher", "admin")
SUPPORTED_ALGORITHMS = ("ES256", "RS256")
MAX_TOKEN_BYTES = 8192
MAX_JWKS_BYTES = 256 * 1024
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "nbf", "iat"]


class TokenError(RegistryError):
    """A token the Registry refuses: always ``AUTH_FAILED`` (401)."""

    def __init__(self, message: str) -> None:
        super().__init__(ReasonCode.AUTH_FAILED, message)


@dataclass(frozen=True)
class Claims:
    """The verified identity a token carries."""

    sub: str
    tenant_id: str
    domain: str | None
    purposes: tuple[str, ...]
    role: str
    issuer: str
    issued_at: int
    expires_at: int
    jti: str | None = None
    x5t_s256: str | None = None  # cnf.x5t#S256: the certificate the token is bound to


def cert_thumbprint(cert: bytes) -> str:
    """RFC 8705 ``x5t#S256``: base64url (no padding) SHA-256 of the DER certificate.

    Accepts PEM or DER bytes, so a PEM file and ``getpeercert(binary_form=True)``
    give the same value.
    """
    import base64
    import hashlib
    import ssl

    der = ssl.PEM_cert_to_DER_cert(cert.decode("ascii")) if cert.lstrip()[:5] == b"-----" else cert
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


def thumbprint_of_file(path: Path) -> str:
    try:
        return cert_thumbprint(path.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read certificate {path}: {exc}") from exc


# --------------------------------------------------------------------------- issuer


@functools.lru_cache(maxsize=16)
def _load_private_key(path: str, mtime_ns: int) -> ec.EllipticCurvePrivateKey:
    del mtime_ns  # part of the cache key only: a rotated key file is re-read
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise UsageError(f"dev issuer key {path} is not an ECDSA P-256 private key")
    return key


def issuer_key(issuer: DevIssuerConfig) -> ec.EllipticCurvePrivateKey:
    path = issuer.private_key
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError as exc:
        raise UsageError(f"dev issuer key not found: {path}") from exc
    return _load_private_key(str(path), mtime)


def public_jwk(
    key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey, kid: str
) -> dict[str, Any]:
    """The JWK of an ES256 public key, as published in the issuer's JWKS."""
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(pub))
    jwk.update({"kid": kid, "use": "sig", "alg": "ES256"})
    return jwk


def jwks_document(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    return {"keys": [public_jwk(key, kid)]}


def sign_claims(
    issuer: DevIssuerConfig,
    claims: Mapping[str, Any],
    *,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign arbitrary claims with the dev issuer key (ES256). Tests use it to craft
    expired, future or over-long tokens; :func:`mint_token` is the normal path."""
    hdr = {"kid": issuer.kid, **(headers or {})}
    return jwt.encode(dict(claims), issuer_key(issuer), algorithm="ES256", headers=hdr)


def mint_token(
    issuer: DevIssuerConfig,
    *,
    sub: str,
    tenant: str,
    purposes: Sequence[str],
    domain: str | None,
    role: str,
    ttl: int,
    bind_x5t: str | None = None,
) -> str:
    """A short-lived workload token from the dev issuer (production uses a real IdP);
    ``bind_x5t`` binds it to a client certificate (RFC 8705 ``cnf.x5t#S256``)."""
    if role not in ROLES:
        raise UsageError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if ttl <= 0:
        raise UsageError("ttl must be a positive number of seconds")
    if not sub or not tenant:
        raise UsageError("sub and tenant must not be empty")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(12),
        "tenant_id": tenant,
        "purpose": list(purposes),
        "role": role,
    }
    if domain is not None:
        claims["domain"] = domain
    if bind_x5t is not None:
        claims["cnf"] = {"x5t#S256": bind_x5t}
    return sign_claims(issuer, claims)


def mint_from_dev_token(cfg: DevTokenConfig) -> str:
    """Mint a fresh token as a client config's ``[registry.dev_token]`` describes.

    Called on every request by the Registry client in dev environments, the way a
    Kubernetes projected token file is re-read on every request.
    """
    from trustload.config import load_registry_config

    service = load_registry_config(cfg.issuer_config)
    if service.dev_issuer is None:
        raise UsageError(f"{cfg.issuer_config} has no [dev_issuer] section")
    return mint_token(
        service.dev_issuer,
        sub=cfg.sub,
        tenant=cfg.tenant,
        purposes=cfg.purpose,
        domain=cfg.domain,
        role=cfg.role,
        ttl=cfg.ttl,
        bind_x5t=None if cfg.bind_cert is None else thumbprint_of_file(cfg.bind_cert),
    )


# --------------------------------------------------------------------------- verifier


def _parse_jwks(raw: bytes, origin: str) -> dict[str, jwt.PyJWK]:
    if len(raw) > MAX_JWKS_BYTES:
        raise UsageError(f"JWKS {origin} is larger than {MAX_JWKS_BYTES} bytes")
    try:
        doc = json.loads(raw)
        keys = doc["keys"]
        if not isinstance(keys, list):
            raise TypeError("keys is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"JWKS {origin} is not a JSON Web Key Set: {exc}") from exc
    found: dict[str, jwt.PyJWK] = {}
    for index, item in enumerate(keys):
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        if item.get("kty") not in ("EC", "RSA"):
            continue
        try:
            jwk = jwt.PyJWK.from_dict(item)
        except jwt.PyJWTError as exc:
            raise UsageError(f"JWKS {origin}: key {index} is unusable: {exc}") from exc
        found[str(item.get("kid", f"#{index}"))] = jwk
    if not found:
        raise UsageError(f"JWKS {origin} holds no EC or RSA signing key")
    return found


class TokenVerifier:
    """Verifies bearer tokens against a JWKS (file, or URL refreshed on unknown kid)."""

    JWKS_REFRESH_MIN_INTERVAL = 60.0

    def __init__(self, cfg: OIDCConfig, keys: dict[str, jwt.PyJWK] | None = None) -> None:
        algs = [a for a in cfg.algorithms if a in SUPPORTED_ALGORITHMS]
        if not algs:
            raise UsageError(f"oidc.algorithms must name some of {SUPPORTED_ALGORITHMS}")
        if cfg.max_token_lifetime <= 0 or cfg.leeway < 0 or cfg.leeway > 300:
            raise UsageError("oidc.max_token_lifetime must be > 0 and oidc.leeway in [0, 300]")
        self.cfg = cfg
        self.algorithms = tuple(algs)
        self._lock = threading.Lock()
        self._fetched_at = 0.0
        self._keys = keys if keys is not None else self._load_keys()

    def _load_keys(self) -> dict[str, jwt.PyJWK]:
        if self.cfg.jwks_file is not None:
            path = self.cfg.jwks_file
            try:
                return _parse_jwks(path.read_bytes(), str(path))
            except FileNotFoundError as exc:
                raise UsageError(f"JWKS file not found: {path}") from exc
        if self.cfg.jwks_url is not None:
            return self._fetch_url(self.cfg.jwks_url)
        raise UsageError("oidc needs jwks_file or jwks_url")

    def _fetch_url(self, url: str) -> dict[str, jwt.PyJWK]:
        import ssl

        import httpx

        if not url.startswith("https://"):
            raise UsageError(f"oidc.jwks_url must be https: {url}")
        if self.cfg.jwks_ca is None:
            raise UsageError("oidc.jwks_url needs oidc.jwks_ca")
        try:
            # Only the configured CA: create_default_context(cafile=...) loads no system roots.
            ctx = ssl.create_default_context(cafile=str(self.cfg.jwks_ca))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load oidc.jwks_ca {self.cfg.jwks_ca}: {exc}") from exc
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            with httpx.Client(
                timeout=5.0, follow_redirects=False, verify=ctx, trust_env=False
            ) as client:
                resp = client.get(url)
                resp.raise_for_status()
                return _parse_jwks(resp.content, url)
        except httpx.HTTPError as exc:
            raise UsageError(f"cannot fetch JWKS {url}: {exc}") from exc

    def _key_for(self, kid: str | None) -> jwt.PyJWK:
        if kid is None:
            if len(self._keys) == 1:
                return next(iter(self._keys.values()))
            raise TokenError("token has no kid and the JWKS holds several keys")
        key = self._keys.get(kid)
        if key is None and self.cfg.jwks_url is not None:
            with self._lock:
                if time.monotonic() - self._fetched_at > self.JWKS_REFRESH_MIN_INTERVAL:
                    self._fetched_at = time.monotonic()
                    try:
                        self._keys = self._fetch_url(self.cfg.jwks_url)
                    except UsageError as exc:
                        raise TokenError(f"JWKS refresh failed: {exc}") from exc
            key = self._keys.get(kid)
        if key is None:
            raise TokenError("token signed by an unknown key")
        return key

    def verify(
        self, token: str, *, now: float | None = None, peer_x5t: str | None = None
    ) -> Claims:
        """Return the verified claims, or raise :class:`TokenError` (AUTH_FAILED).

        ``peer_x5t`` is the ``x5t#S256`` of the connection's client certificate: a bound
        token must match it (and without it a bound token is refused).
        """
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise TokenError("token missing or too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(f"malformed token: {exc}") from exc
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise TokenError(f"token algorithm {alg!r:.20} is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenError("token kid is not a string")
        jwk = self._key_for(kid)
        expected_type = ec.EllipticCurvePublicKey if alg == "ES256" else rsa.RSAPublicKey
        if not isinstance(jwk.key, expected_type):
            raise TokenError("token algorithm does not match the key type")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                jwk.key,
                algorithms=[alg],
                audience=self.cfg.audience,
                issuer=self.cfg.issuer,
                leeway=self.cfg.leeway,
                options={
                    "require": REQUIRED_CLAIMS,
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_aud": True,
                    "verify_iss": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"token refused: {exc}") from exc
        verified = self._claims(claims, now if now is not None else time.time())
        self._check_binding(verified, peer_x5t)
        return verified

    def _check_binding(self, claims: Claims, peer_x5t: str | None) -> None:
        import hmac

        if claims.x5t_s256 is None:
            if self.cfg.require_bound_tokens:
                raise TokenError(
                    "token is not bound to a client certificate (cnf.x5t#S256), "
                    "and oidc.require_bound_tokens is set"
                )
            return
        if peer_x5t is None or not hmac.compare_digest(claims.x5t_s256.encode(), peer_x5t.encode()):
            raise TokenError("token is bound to another client certificate (cnf.x5t#S256)")

    def _claims(self, c: dict[str, Any], now: float) -> Claims:
        iat, exp = c.get("iat"), c.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            raise TokenError("iat and exp must be integers")
        if iat > now + self.cfg.leeway:
            raise TokenError("token issued in the future")
        if exp - iat > self.cfg.max_token_lifetime:
            raise TokenError(
                f"token lifetime {exp - iat}s exceeds the maximum {self.cfg.max_token_lifetime}s"
            )
        sub, tenant = c.get("sub"), c.get("tenant_id")
        if not isinstance(sub, str) or not sub or len(sub) > 512 or has_control(sub):
            raise TokenError("sub must be a non-empty string without control characters")
        if not Kind.TENANT.accepts(tenant):
            raise TokenError(f"tenant_id must be {Kind.TENANT.value}")
        domain = c.get("domain")
        if domain is not None and not is_valid(Kind.LABEL, domain):
            raise TokenError(f"domain must be {Kind.LABEL.value}")
        purposes = c.get("purpose", [])
        if isinstance(purposes, str):
            purposes = [purposes]
        if not isinstance(purposes, list) or not all(is_valid(Kind.LABEL, p) for p in purposes):
            raise TokenError(f"purpose must be a list of {Kind.LABEL.value}")
        role = c.get("role", "consumer")
        if role not in ROLES:
            raise TokenError(f"unknown role {role!r:.40}")
        jti = c.get("jti")
        x5t = _confirmation(c)
        return Claims(
            sub=sub,
            tenant_id=tenant,
            domain=domain,
            purposes=tuple(purposes),
            role=role,
            issuer=str(c["iss"]),
            issued_at=iat,
            expires_at=exp,
            jti=jti if isinstance(jti, str) else None,
            x5t_s256=x5t,
        )


def _confirmation(c: dict[str, Any]) -> str | None:
    """The ``cnf.x5t#S256`` of a token; any other or malformed confirmation is refused,
    because a binding the Registry cannot check must not be silently ignored."""
    if "cnf" not in c:
        return None
    cnf = c["cnf"]
    if not isinstance(cnf, dict) or set(cnf) != {"x5t#S256"}:
        raise TokenError("token cnf claim must hold exactly x5t#S256 (RFC 8705)")
    x5t = cnf["x5t#S256"]
    if not isinstance(x5t, str) or not (20 <= len(x5t) <= 64):
        raise TokenError("token cnf.x5t#S256 is not a SHA-256 thumbprint")
    return x5t
