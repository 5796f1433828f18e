"""cosign's legacy signatures, verified offline: image ``.sig`` layers and blob bundles.

One function, :func:`verify_cosign_signature`, serves both: an image signature is a
signature over its simple-signing payload, a ``sign-blob`` signature one over the blob;
Rekor records both as a ``hashedrekord`` of the SHA-256 of those bytes. The order of the
steps matters for the reason code:

1. the signature must verify with a trusted key (key mode) or with the leaf certificate's
   key (certificate mode); otherwise the signature is invalid;
2. then, if Rekor keys are configured, a SET is **required**: absent, the signature is
   TRANSPARENCY_UNAVAILABLE (nothing offline proves when a short-lived certificate was
   used); present, it must be signed by a configured log key over the canonical
   ``Payload``, name that key's log ID, and its body must record this digest, this
   signature and this key or certificate;
3. certificate mode: the leaf (with the ``chain`` annotation and configured intermediates
   as untrusted path-building help) must chain to a configured root **at the SET's
   integrated time** when there is a verified SET, else now, and match the pinned
   identity and issuer (:func:`trustload.crypto.certchain.match_identity`, shared with
   OMS bundles).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from trustload.crypto.keys import (
    PublicKey,
    check_public_key,
    fingerprint,
    load_public_key_pem,
    public_der,
    verify_prehashed_sha256,
)
from trustload.crypto.verify import trusted_keys
from trustload.decision import ReasonCode
from trustload.errors import SignatureError, TrustloadError
from trustload.facts import TrustAnchors
from trustload.formats.cosign import RekorSet, parse_hashedrekord

MAX_FUTURE = timedelta(minutes=5)
"""A SET integrated later than now + this is refused (a log's clock cannot be ahead)."""


def load_certificate(data: bytes, what: str, code: ReasonCode) -> x509.Certificate:
    """A PEM or DER certificate (cosign writes PEM; ``sign-blob`` bundles either)."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise SignatureError(f"{what} does not parse: {str(exc)[:120]}", code) from None


def _pem_chain(blobs: Sequence[bytes], code: ReasonCode) -> list[bytes]:
    out: list[bytes] = []
    for blob in blobs:
        try:
            certs = x509.load_pem_x509_certificates(blob)
        except ValueError:
            raise SignatureError("certificate chain does not parse", code) from None
        out.extend(c.public_bytes(serialization.Encoding.DER) for c in certs)
    return out


def rekor_public_keys(anchors: TrustAnchors) -> list[PublicKey]:
    keys: list[PublicKey] = []
    for pem in anchors.rekor_keys:
        try:
            keys.append(load_public_key_pem(pem))
        except ValueError:
            continue
    return keys


def verify_set(rset: RekorSet, log_keys: Sequence[PublicKey], code: ReasonCode) -> PublicKey:
    """The SET is a log key's signature over the canonical Payload; logID names that key."""
    message_digest = hashlib.sha256(rset.payload.canonical()).digest()
    for key in log_keys:
        log_id = hashlib.sha256(public_der(key)).hexdigest()
        if not hmac.compare_digest(log_id, rset.payload.log_id):
            continue
        if verify_prehashed_sha256(key, rset.signed_entry_timestamp, message_digest):
            return key
    raise SignatureError("Rekor SET is not signed by a trusted log key", code)


def _entry_key_der(pem: bytes, code: ReasonCode) -> tuple[bytes, bytes | None]:
    """(SPKI DER, certificate DER or None) of the key material a log entry records."""
    if b"CERTIFICATE" in pem[:64]:
        cert = load_certificate(pem, "log entry certificate", code)
        try:
            key = check_public_key(cert.public_key())
        except ValueError:
            raise SignatureError("log entry certificate key unusable", code) from None
        return public_der(key), cert.public_bytes(serialization.Encoding.DER)
    try:
        return public_der(load_public_key_pem(pem)), None
    except ValueError:
        raise SignatureError("log entry public key does not parse", code) from None


def check_entry_binding(
    rset: RekorSet,
    *,
    digest: bytes,
    signature: bytes,
    signer: PublicKey,
    leaf: x509.Certificate | None,
    code: ReasonCode,
) -> None:
    """The SET's body must be a hashedrekord of exactly this digest, signature and signer."""
    entry = parse_hashedrekord(rset.payload.body, code=code)
    if not hmac.compare_digest(entry.sha256_hex, digest.hex()):
        raise SignatureError("Rekor entry records another artifact hash", code)
    if not hmac.compare_digest(entry.signature, signature):
        raise SignatureError("Rekor entry records another signature", code)
    key_der, cert_der = _entry_key_der(entry.public_pem, code)
    if not hmac.compare_digest(key_der, public_der(signer)):
        raise SignatureError("Rekor entry records another signing key", code)
    if (
        leaf is not None
        and cert_der is not None
        and not hmac.compare_digest(cert_der, leaf.public_bytes(serialization.Encoding.DER))
    ):
        raise SignatureError("Rekor entry records another certificate", code)


def verify_cosign_signature(
    digest: bytes,
    signature: bytes,
    *,
    certificate: bytes | None,
    chain: Sequence[bytes],
    rekor: RekorSet | TrustloadError | None,
    anchors: TrustAnchors,
    now: datetime,
    code: ReasonCode,
) -> str:
    """Verify one cosign signature over the bytes whose SHA-256 is ``digest``.

    ``rekor`` is the parsed SET, the parse error it gave, or None when there is none.
    Returns the signer (key fingerprint or certificate identity); raises SignatureError
    with ``code`` or TRANSPARENCY_UNAVAILABLE (module docstring).
    """
    leaf: x509.Certificate | None = None
    signer_key: PublicKey | None = None
    for key in trusted_keys(anchors):
        if verify_prehashed_sha256(key, signature, digest):
            signer_key = key
            break
    if signer_key is None:
        if not anchors.ca_certs:
            if anchors.public_keys:
                raise SignatureError("signature does not verify with any trusted key", code)
            raise SignatureError("no trusted key or certificate root configured", code)
        if certificate is None:
            raise SignatureError("no signing certificate with the signature", code)
        leaf = load_certificate(certificate, "signing certificate", code)
        try:
            signer_key = check_public_key(leaf.public_key())
        except ValueError as exc:
            raise SignatureError(f"certificate key unusable: {exc}", code) from None
        if not verify_prehashed_sha256(signer_key, signature, digest):
            raise SignatureError("signature does not verify with the certificate's key", code)

    integrated: datetime | None = None
    log_keys = rekor_public_keys(anchors)
    if anchors.rekor_keys:
        if rekor is None:
            raise SignatureError(
                "a Rekor SET is required and the signature has none",
                ReasonCode.TRANSPARENCY_UNAVAILABLE,
            )
        if isinstance(rekor, TrustloadError):
            raise SignatureError(f"Rekor SET: {rekor.message}", code)
        verify_set(rekor, log_keys, code)
        check_entry_binding(
            rekor, digest=digest, signature=signature, signer=signer_key, leaf=leaf, code=code
        )
        integrated = datetime.fromtimestamp(rekor.payload.integrated_time, tz=UTC)
        if integrated > now + MAX_FUTURE:
            raise SignatureError(f"Rekor SET integrated in the future ({integrated})", code)

    if leaf is None:
        return fingerprint(signer_key)
    from trustload.crypto.certchain import verify_chain

    try:
        _key, identity = verify_chain(
            leaf.public_bytes(serialization.Encoding.DER),
            _pem_chain(chain, code) + _pem_chain(anchors.ca_intermediates, code),
            anchors.ca_certs,
            at=integrated or now,
            identity=anchors.certificate_identity,
            issuer=anchors.certificate_oidc_issuer,
        )
    except SignatureError as exc:
        raise SignatureError(exc.message, code) from None
    return identity
