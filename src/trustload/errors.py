"""One error family. Adapters translate library errors into these at the boundary so
the core never sees an httpx, sqlalchemy or cryptography exception.
"""

from __future__ import annotations

from trustload.decision import ReasonCode


class TrustloadError(Exception):
    """An error that denies: it always carries the reason code it maps to."""

    def __init__(self, code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class UsageError(Exception):
    """Bad invocation or configuration: exit 2, nothing changed, no decision made."""


class FormatError(TrustloadError):
    """Evidence that is malformed, truncated, oversized or hostile."""


class SignatureError(TrustloadError):
    def __init__(self, message: str, code: ReasonCode = ReasonCode.SIGNATURE_INVALID) -> None:
        super().__init__(code, message)


class AttestationError(TrustloadError):
    def __init__(self, message: str, code: ReasonCode = ReasonCode.ATTESTATION_INVALID) -> None:
        super().__init__(code, message)


class RegistryError(TrustloadError):
    """Anything on the channel to the Registry: auth, TLS, allowlist, availability."""
