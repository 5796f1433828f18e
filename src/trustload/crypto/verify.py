"""One entry point for every signature format the gate accepts: :func:`verify_bundle`.

Accepted, against :class:`~trustload.facts.TrustAnchors` (any one anchor suffices):

* Sigstore bundles v0.1 / v0.2 / v0.3 with a DSSE envelope or a message signature:
  - ``publicKey`` material (model-signing key mode, cosign managed keys): verified with
    a *configured* public key (the bundle's hint is never trusted). A transparency-log
    entry, when present and logs are configured (``trusted_root`` tlogs or
    ``rekor_keys``), must verify too; with ``require_key_tlog`` it is required
    (``verify-files --key K --trusted-root R``, ``[gate] rekor_keys``).
  - certificate material: a private CA (``ca_certs``, leaf identity pinned, validity
    checked at ``now``), or Sigstore keyless (``trusted_root`` + identity + issuer),
    offline, with the inclusion proof required.
* A bare DSSE envelope (cosign ``attest-blob``, ``trustload attest``) signed by a key.

Pure of I/O except reading the configured trusted root. Every failure raises
:class:`~trustload.errors.SignatureError` with SIGNATURE_INVALID or
TRANSPARENCY_UNAVAILABLE; callers map it to their check.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trustload.crypto.keys import (
    PublicKey,
    fingerprint,
    load_public_key_pem,
    verify_message,
    verify_prehashed_sha256,
)
from trustload.decision import ReasonCode
from trustload.errors import SignatureError, TrustloadError
from trustload.facts import TrustAnchors
from trustload.formats.dsse import Envelope, pae, parse_envelope_obj
from trustload.formats.jsonstrict import loads_strict

BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
)
MAX_BUNDLE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class VerifiedContent:
    """What a verified signature vouches for: a DSSE envelope, or a message digest."""

    envelope: Envelope | None
    signer: str
    mode: str  # "key" | "certificate" | "keyless"


def trusted_keys(anchors: TrustAnchors) -> list[PublicKey]:
    """The configured public keys that parse; an unusable key verifies nothing."""
    keys: list[PublicKey] = []
    for pem in anchors.public_keys:
        try:
            keys.append(load_public_key_pem(pem))
        except ValueError:
            continue
    return keys


def check_key_roles(anchors: TrustAnchors) -> None:
    """Refuse (UsageError) a key configured both to sign models and to sign attestations.

    Separate roles only help if no key holds both: otherwise a model signature could
    still be presented as an attestation signature and the reverse.
    """
    from trustload.errors import UsageError

    models = {fingerprint(k) for k in trusted_keys(anchors)}
    attesters = {fingerprint(k) for k in trusted_keys(anchors.for_attestations())}
    if anchors.attestation_keys and models & attesters:
        raise UsageError(
            "[gate] attestation_keys and trusted_keys share a key; give each role its own key"
        )


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 64 * 1024:
        raise SignatureError(f"{what}: not base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{what}: invalid base64") from None


def verify_key_message_signature(key: PublicKey, signature: bytes, artifact_sha256: bytes) -> bool:
    """A hashedrekord / cosign blob signature: over the artifact's SHA-256 (or its bytes' hash)."""
    return verify_prehashed_sha256(key, signature, artifact_sha256)


def verify_envelope_with_key(key: PublicKey, envelope: Envelope) -> bool:
    """Some signature of the envelope verifies over PAE with ``key``."""
    message = pae(envelope.payload_type, envelope.payload)
    return any(verify_message(key, s.sig, message) for s in envelope.signatures)


def _key_verify(
    keys: list[PublicKey],
    envelope: Envelope | None,
    signature: bytes | None,
    artifact_sha256: bytes | None,
) -> PublicKey | None:
    for key in keys:
        if envelope is not None and verify_envelope_with_key(key, envelope):
            return key
        if (
            envelope is None
            and signature is not None
            and artifact_sha256 is not None
            and verify_key_message_signature(key, signature, artifact_sha256)
        ):
            return key
    return None


def _verify_certificate(
    leaf_and_chain: list[bytes],
    envelope: Envelope | None,
    signature: bytes | None,
    artifact_sha256: bytes | None,
    anchors: TrustAnchors,
    now: datetime,
) -> str:
    from trustload.crypto.certchain import verify_chain

    key, identity = verify_chain(
        leaf_and_chain[0],
        leaf_and_chain[1:],
        anchors.ca_certs,
        at=now,
        identity=anchors.certificate_identity,
        issuer=anchors.certificate_oidc_issuer,
    )
    if _key_verify([key], envelope, signature, artifact_sha256) is None:
        raise SignatureError("signature does not verify with the certificate's key")
    return identity


def _check_key_tlog(
    obj: dict[str, Any],
    raw: bytes,
    tlog: list[Any],
    key: PublicKey,
    anchors: TrustAnchors,
    artifact_sha256: bytes | None,
    envelope: Envelope | None,
) -> None:
    """Key mode and the transparency log: required when asked for, verified whenever
    logs are configured, ignored only when no log is configured at all."""
    logs = anchors.trusted_root is not None or bool(anchors.rekor_keys)
    required = anchors.require_key_tlog
    if not tlog:
        if required:
            raise SignatureError(
                "a transparency-log entry is required but the bundle has none",
                ReasonCode.TRANSPARENCY_UNAVAILABLE,
            )
        return
    if not logs:
        return
    from trustload.crypto.sigstore_impl import verify_managed_key_bundle

    verify_managed_key_bundle(
        obj,
        raw,
        key=key,
        trusted_root=anchors.trusted_root,
        rekor_keys=anchors.rekor_keys,
        artifact_sha256=artifact_sha256,
        envelope=envelope,
    )


def verify_bundle(
    data: bytes,
    anchors: TrustAnchors,
    *,
    now: datetime,
    artifact_sha256: bytes | None = None,
) -> VerifiedContent:
    """Verify a Sigstore bundle or bare DSSE envelope; raise SignatureError otherwise."""
    if data is None or len(data) == 0:
        raise SignatureError("empty signature", ReasonCode.SIGNATURE_MISSING)
    obj = loads_strict(
        data, code=ReasonCode.SIGNATURE_INVALID, what="signature bundle", max_bytes=MAX_BUNDLE_BYTES
    )
    if not isinstance(obj, dict):
        raise SignatureError("signature bundle is not a JSON object")
    if "mediaType" not in obj and "payloadType" in obj:
        bare = parse_envelope_obj(obj, code=ReasonCode.SIGNATURE_INVALID)
        bare_key = _key_verify(trusted_keys(anchors), bare, None, None)
        if bare_key is None:
            raise SignatureError("DSSE envelope is not signed by a trusted key")
        _check_key_tlog(obj, bytes(data), [], bare_key, anchors, None, bare)
        return VerifiedContent(bare, fingerprint(bare_key), "key")
    media = obj.get("mediaType")
    if media not in BUNDLE_MEDIA_TYPES:
        raise SignatureError(f"unsupported bundle mediaType {media!r:.100}")
    vm = obj.get("verificationMaterial")
    if not isinstance(vm, dict):
        raise SignatureError("bundle has no verificationMaterial")
    has_dsse = "dsseEnvelope" in obj
    has_msg = "messageSignature" in obj
    if has_dsse == has_msg:
        raise SignatureError("bundle must hold exactly one of dsseEnvelope / messageSignature")
    envelope: Envelope | None = None
    signature: bytes | None = None
    if has_dsse:
        envelope = parse_envelope_obj(obj["dsseEnvelope"], code=ReasonCode.SIGNATURE_INVALID)
    else:
        ms = obj["messageSignature"]
        if not isinstance(ms, dict):
            raise SignatureError("bundle messageSignature is not an object")
        signature = _b64(ms.get("signature"), "messageSignature")
        md = ms.get("messageDigest")
        if md is not None and artifact_sha256 is not None:
            if not isinstance(md, dict) or md.get("algorithm") != "SHA2_256":
                raise SignatureError("messageDigest: unsupported algorithm")
            import hmac

            if not hmac.compare_digest(_b64(md.get("digest"), "messageDigest"), artifact_sha256):
                raise SignatureError("bundle message digest does not match the artifact")
        if artifact_sha256 is None:
            raise SignatureError("bundle signs a message digest but no artifact digest was given")
    tlog = vm.get("tlogEntries") or []
    if not isinstance(tlog, list):
        raise SignatureError("tlogEntries is not a list")

    if "publicKey" in vm:
        keys = trusted_keys(anchors)
        if not keys:
            raise SignatureError(
                "bundle is signed by a key, but no usable trusted key is configured"
            )
        key = _key_verify(keys, envelope, signature, artifact_sha256)
        if key is None:
            raise SignatureError("signature does not verify with any trusted key")
        _check_key_tlog(obj, bytes(data), tlog, key, anchors, artifact_sha256, envelope)
        return VerifiedContent(envelope, fingerprint(key), "key")

    certs: list[bytes] = []
    if isinstance(vm.get("certificate"), dict):
        certs = [_b64(vm["certificate"].get("rawBytes"), "certificate")]
    elif isinstance(vm.get("x509CertificateChain"), dict):
        raw_list = vm["x509CertificateChain"].get("certificates")
        if not isinstance(raw_list, list) or not raw_list or len(raw_list) > 10:
            raise SignatureError("empty or oversized certificate chain")
        certs = [
            _b64(c.get("rawBytes") if isinstance(c, dict) else None, "certificate")
            for c in raw_list
        ]
    else:
        raise SignatureError("bundle has no usable verification material")

    errors: list[TrustloadError] = []
    if anchors.ca_certs:
        try:
            identity = _verify_certificate(
                certs, envelope, signature, artifact_sha256, anchors, now
            )
            return VerifiedContent(envelope, identity, "certificate")
        except TrustloadError as exc:
            errors.append(exc)
    if (
        anchors.trusted_root is not None
        and anchors.certificate_identity
        and anchors.certificate_oidc_issuer
    ):
        if not tlog:
            errors.append(
                SignatureError(
                    "keyless signature without a transparency-log entry in the bundle",
                    ReasonCode.TRANSPARENCY_UNAVAILABLE,
                )
            )
        else:
            from trustload.crypto.sigstore_impl import verify_keyless

            try:
                result = verify_keyless(
                    bytes(data),
                    trusted_root=anchors.trusted_root,
                    identity=anchors.certificate_identity,
                    issuer=anchors.certificate_oidc_issuer,
                    artifact_sha256=artifact_sha256,
                )
                if (
                    envelope is not None
                    and result.envelope is not None
                    and (
                        result.envelope.payload != envelope.payload
                        or result.envelope.payload_type != envelope.payload_type
                    )
                ):
                    raise SignatureError("verified envelope differs from the parsed one")
                return VerifiedContent(envelope, result.signer, "keyless")
            except TrustloadError as exc:
                errors.append(exc)
    if not errors:
        raise SignatureError(
            "certificate-signed bundle but no CA or Sigstore identity is configured"
        )
    for err in errors:
        if err.code == ReasonCode.TRANSPARENCY_UNAVAILABLE and anchors.require_tlog:
            raise SignatureError(err.message, ReasonCode.TRANSPARENCY_UNAVAILABLE)
    raise SignatureError("; ".join(e.message for e in errors)[:600])
