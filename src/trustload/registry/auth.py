"""Who is calling: a verified OIDC token plus the mTLS client certificate's identity.

The TLS layer (server.py) has already refused any connection without a certificate
from the configured CA; here the Registry reads the identity that certificate names
(its SAN URI, e.g. a SPIFFE ID, else its subject) and verifies the bearer token.
Both are recorded as the actor of every governance action (R7 "caller").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trustload.oidc import Claims, TokenError, TokenVerifier
from trustload.registry.errors import auth_failed, forbidden

PEER_STATE_KEY = "trustload_peer"
"""Key under which the HTTP protocol puts the peer identity into ``scope["state"]``."""
PEER_X5T_KEY = "trustload_peer_x5t"
"""... and the peer certificate's ``x5t#S256`` (for tokens bound to it, RFC 8705)."""

ROLE_RANK = {"consumer": 0, "publisher": 1, "admin": 2}


@dataclass(frozen=True)
class Caller:
    sub: str
    tenant_id: str
    domain: str | None
    purposes: tuple[str, ...]
    role: str
    cert: str

    @property
    def actor(self) -> str:
        """``<client-cert identity> | <token subject>`` (docs/registry-api.md)."""
        return f"{self.cert} | {self.sub}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require(self, role: str, action: str) -> None:
        """Separation of duties: publishers publish, only admins govern."""
        if ROLE_RANK[self.role] < ROLE_RANK[role]:
            raise forbidden(f"{action} needs role {role}; the token's role is {self.role}")


def peer_identity(peercert: dict[str, Any] | None) -> str | None:
    """The workload identity a verified peer certificate names.

    Prefer the SAN URI (SPIFFE ID), then the subject's CN, then the whole subject.
    """
    if not peercert:
        return None
    for kind, value in peercert.get("subjectAltName", ()):
        if kind == "URI" and isinstance(value, str):
            return value
    parts: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
            parts.append(f"{key}={value}")
    return ",".join(parts) or None


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise auth_failed("an Authorization: Bearer token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise auth_failed("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def authenticate(
    verifier: TokenVerifier,
    authorization: str | None,
    cert: str | None,
    cert_x5t: str | None = None,
) -> Caller:
    """Both factors or nothing (R2.1): a client certificate identity and a valid token
    (bound to that certificate when the token says so, RFC 8705)."""
    if not cert:
        raise auth_failed("no verified client certificate on this connection")
    try:
        claims: Claims = verifier.verify(bearer_token(authorization), peer_x5t=cert_x5t)
    except TokenError as exc:
        raise auth_failed(exc.message) from exc
    return Caller(
        sub=claims.sub,
        tenant_id=claims.tenant_id,
        domain=claims.domain,
        purposes=claims.purposes,
        role=claims.role,
        cert=cert,
    )
