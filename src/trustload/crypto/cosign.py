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
from typing import Any

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


MAX_TRUSTED_ROOT = 4 * 1024 * 1024


def with_trusted_root(anchors: TrustAnchors, code: ReasonCode) -> TrustAnchors:
    """A Sigstore TrustedRoot as cosign's legacy verifier uses it: its Fulcio chains are
    certificate roots and its transparency logs' keys are Rekor keys (so a SET becomes
    required). Certificate-authority validity windows and SCTs are not evaluated."""
    import base64
    from dataclasses import replace

    from trustload.formats.jsonstrict import loads_strict

    if anchors.trusted_root is None:
        return anchors
    try:
        with open(anchors.trusted_root, "rb") as fh:
            raw = fh.read(MAX_TRUSTED_ROOT + 1)
    except OSError as exc:
        raise SignatureError(f"cannot read trusted root: {exc.strerror}", code) from None
    doc = loads_strict(raw, code=code, what="trusted root", max_bytes=MAX_TRUSTED_ROOT)
    cas: list[bytes] = []
    logs: list[bytes] = []
    try:
        for ca in doc.get("certificateAuthorities") or []:
            for c in ca["certChain"]["certificates"]:
                cert = x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"]))
                cas.append(cert.public_bytes(serialization.Encoding.PEM))
        for log in doc.get("tlogs") or []:
            der = base64.b64decode(log["publicKey"]["rawBytes"])
            key = serialization.load_der_public_key(der)
            logs.append(
                key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SignatureError(f"unusable trusted root: {type(exc).__name__}", code) from None
    return replace(
        anchors,
        ca_certs=anchors.ca_certs + tuple(cas),
        rekor_keys=anchors.rekor_keys + tuple(logs),
    )


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
    anchors = with_trusted_root(anchors, code)
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


def _intoto_entry_keys(spec: dict[str, Any], code: ReasonCode) -> tuple[str, list[bytes]]:
    """(payload hash hex, key/cert PEMs) of an ``intoto`` 0.0.1 / 0.0.2 or ``dsse`` entry."""
    import base64

    def dec(value: object) -> bytes:
        if not isinstance(value, str):
            raise SignatureError("log entry: expected base64", code)
        return base64.b64decode(value, validate=True)

    content = spec.get("content")
    if isinstance(content, dict):  # intoto
        ph = content.get("payloadHash")
        pems: list[bytes] = []
        if "publicKey" in spec:  # 0.0.1
            pems.append(dec(spec["publicKey"]))
        env = content.get("envelope")
        if isinstance(env, dict):  # 0.0.2: each signature carries its key, base64 twice
            for s in env.get("signatures") or []:
                if isinstance(s, dict):
                    pems.append(dec(dec(s.get("publicKey")).decode("ascii")))
    else:  # dsse 0.0.1
        ph = spec.get("payloadHash")
        pems = [dec(s.get("verifier")) for s in spec.get("signatures") or [] if isinstance(s, dict)]
    if not isinstance(ph, dict) or ph.get("algorithm") != "sha256":
        raise SignatureError("log entry has no sha256 payload hash", code)
    value = ph.get("value")
    if not isinstance(value, str):
        raise SignatureError("log entry payload hash is not a string", code)
    return value, pems


def verify_attestation_set(
    rset: RekorSet,
    *,
    payload: bytes,
    signer_fingerprint: str,
    anchors: TrustAnchors,
    now: datetime,
    code: ReasonCode,
) -> datetime:
    """An ``.att`` layer's SET: signed by a configured log, over an ``intoto`` or ``dsse``
    entry recording this envelope's payload hash and the key that signed it."""
    import base64
    import json

    verify_set(rset, rekor_public_keys(anchors), code)
    try:
        body = json.loads(base64.b64decode(rset.payload.body, validate=True))
        if body.get("kind") not in ("intoto", "dsse") or not isinstance(body.get("spec"), dict):
            raise SignatureError(f"log entry kind {body.get('kind')!r:.40} is not intoto", code)
        value, pems = _intoto_entry_keys(body["spec"], code)
    except SignatureError:
        raise
    except Exception as exc:
        raise SignatureError(f"malformed log entry body: {type(exc).__name__}", code) from None
    if not hmac.compare_digest(value, hashlib.sha256(payload).hexdigest()):
        raise SignatureError("log entry records another attestation payload", code)
    fingerprints = set()
    for pem in pems:
        key_der, _cert = _entry_key_der(pem, code)
        fingerprints.add("sha256:" + hashlib.sha256(key_der).hexdigest())
    if signer_fingerprint not in fingerprints:
        raise SignatureError("log entry records another signing key", code)
    integrated = datetime.fromtimestamp(rset.payload.integrated_time, tz=UTC)
    if integrated > now + MAX_FUTURE:
        raise SignatureError(f"Rekor SET integrated in the future ({integrated})", code)
    return integrated
