"""Sigstore bundle verification, offline, on top of the ``sigstore`` library.

Imported lazily (heavy). Where sigstore-python 4.x falls short we do the missing
part ourselves with the same primitives, never by skipping a check:

* Rekor ``intoto/0.0.2`` entries (npm provenance, older cosign): sigstore rejects their
  integrated time and has no body-consistency check for them. :class:`GateVerifier`
  accepts the integrated time only when bound by an inclusion promise (the SET is
  verified with the entry), and checks the entry body against the envelope: payload
  hash, payload type, every signature and the signing certificate.
* Managed-key bundles (``verificationMaterial.publicKey``): sigstore cannot verify
  them at all. :func:`verify_managed_key_bundle` verifies the message signature with
  the *trusted* key (the bundle's key hint is never trusted), then the transparency
  log entry (Merkle inclusion proof, signed checkpoint, SET) against the trusted root
  and the entry body against the signature, key and artifact digest. The logs are the
  trusted root's, or bare Rekor public keys (``--rekor-key``).
* A timestamp authority's ``validFor.end`` is inclusive (``TimeRange`` is a closed
  interval in the Sigstore protobuf specs); sigstore 4.5.1 compares it with ``<``.
  :class:`GateVerifier` checks signed timestamps against a copy of the root whose TSA
  ends are one microsecond later, which turns ``<`` into ``<=`` exactly (datetime
  resolution). ``tests/interop/test_sigstore_conformance.py`` pins both sides of the
  boundary, so an upstream fix that makes the shift wrong fails a test.

Trust always comes from an explicit ``trusted_root.json``; nothing is fetched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sigstore import dsse as sigstore_dsse
from sigstore._internal.trust import Keyring, KeyringPurpose, RekorKeyring
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TransparencyLogEntry, TrustedRoot
from sigstore.verify.policy import Identity
from sigstore.verify.verifier import Verifier
from sigstore_models.bundle.v1 import Bundle as RawBundle
from sigstore_models.common import v1 as common_v1
from sigstore_models.common.v1 import HashAlgorithm

from trustload.crypto.keys import PublicKey, public_der
from trustload.decision import ReasonCode
from trustload.errors import SignatureError
from trustload.formats.dsse import Envelope

_logger = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _trusted_root_cached(path: str, mtime_ns: int, size: int) -> TrustedRoot:
    return TrustedRoot.from_file(path)


def load_trusted_root(path: Path) -> TrustedRoot:
    """Load an explicit TrustedRoot JSON (cached by path, mtime and size)."""
    try:
        st = path.stat()
        if st.st_size > 4 * 1024 * 1024:
            raise SignatureError(f"trusted root {path} is too large")
        return _trusted_root_cached(str(path), st.st_mtime_ns, st.st_size)
    except SignatureError:
        raise
    except Exception as exc:
        raise SignatureError(f"cannot load trusted root {path}: {exc}") from None


def _tsa_end_inclusive(root: TrustedRoot) -> TrustedRoot:
    """A copy of ``root`` whose TSA validity ends are one microsecond later (module doc)."""
    inner = root._inner.model_copy(deep=True)
    for authority in inner.timestamp_authorities:
        period = authority.valid_for
        if period is not None and period.end is not None:
            period.end = period.end + timedelta(microseconds=1)
    return TrustedRoot(inner)


class GateVerifier(Verifier):
    """sigstore's Verifier, extended to Rekor ``intoto/0.0.2`` entries and an inclusive
    TSA validity end (see module doc)."""

    def __init__(self, *, trusted_root: TrustedRoot) -> None:
        super().__init__(trusted_root=trusted_root)
        self._tsa_root = _tsa_end_inclusive(trusted_root)

    def _verify_signed_timestamp(self, timestamp_response: Any, message: bytes) -> Any:
        # Only the TSA check sees the shifted root; the verifier is per call, not shared.
        original = self._trusted_root
        self._trusted_root = self._tsa_root
        try:
            return super()._verify_signed_timestamp(timestamp_response, message)
        finally:
            self._trusted_root = original

    def _establish_time(self, bundle: Bundle) -> list[Any]:
        entry = bundle.log_entry._inner
        kv = entry.kind_version
        if kv.kind == "intoto" and kv.version == "0.0.2":
            from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult

            results: list[Any] = []
            if bundle.verification_material.timestamp_verification_data:
                if not self._trusted_root.get_timestamp_authorities():
                    raise VerificationError("bundle has signed timestamps but the root has no TSA")
                results.extend(self._verify_timestamp_authority(bundle))
            # The integrated time counts only with an inclusion promise; the SET that
            # binds it to this body is verified with the log entry (entry._verify).
            if entry.integrated_time and entry.inclusion_promise:
                results.append(
                    TimestampVerificationResult(
                        source=TimestampSource.TRANSPARENCY_SERVICE,
                        time=datetime.fromtimestamp(entry.integrated_time, tz=UTC),
                    )
                )
            return results
        return list(super()._establish_time(bundle))

    def verify_dsse(self, bundle: Bundle, policy: Any) -> tuple[str, bytes]:
        kv = bundle.log_entry._inner.kind_version
        if not (kv.kind == "intoto" and kv.version == "0.0.2"):
            result: tuple[str, bytes] = super().verify_dsse(bundle, policy)
            return result
        self._verify_common_signing_cert(bundle, policy)
        envelope = bundle._dsse_envelope
        if envelope is None:
            raise VerificationError("intoto entry without a DSSE envelope")
        sigstore_dsse._verify(bundle.signing_certificate.public_key(), envelope)  # type: ignore[arg-type]
        _validate_intoto_v002_body(bundle, envelope)
        return (envelope._inner.payload_type, envelope._inner.payload)


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise VerificationError(f"intoto log entry: {what} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise VerificationError(f"intoto log entry: {what} is not valid base64") from None


def _b64_twice(text: Any, what: str) -> bytes:
    """Rekor intoto/0.0.2 stores envelope fields base64-encoded twice."""
    inner = _b64(text, what)
    try:
        return _b64(inner.decode("ascii"), what)
    except UnicodeDecodeError:
        raise VerificationError(f"intoto log entry: {what} does not decode (not base64)") from None


def entry_body(canonicalized_body: bytes) -> dict[str, Any]:
    """The log entry body as a JSON object; a body that does not decode is a clear error."""
    try:
        body = json.loads(canonicalized_body.decode("utf-8"))
    except UnicodeDecodeError:
        raise VerificationError("log entry body does not decode: not UTF-8") from None
    except ValueError:
        raise VerificationError("log entry body does not decode: not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise VerificationError("log entry body has no spec object")
    return body


def _validate_intoto_v002_body(bundle: Bundle, envelope: Any) -> None:
    """The Rekor intoto/0.0.2 body must describe exactly this envelope and certificate."""
    leaf_der = bundle.signing_certificate.public_bytes(serialization.Encoding.DER)
    check_intoto_v002_body(
        bundle.log_entry._inner.canonicalized_body,
        payload_type=envelope._inner.payload_type,
        payload=envelope._inner.payload,
        signatures={s.sig for s in envelope._inner.signatures},
        leaf_der=leaf_der,
    )


def check_intoto_v002_body(
    canonicalized_body: bytes,
    *,
    payload_type: str,
    payload: bytes,
    signatures: set[bytes],
    leaf_der: bytes,
) -> None:
    """Pure: raise VerificationError unless the intoto/0.0.2 body records this envelope."""
    try:
        content = entry_body(canonicalized_body)["spec"]["content"]
        benv = content["envelope"]
        if benv.get("payloadType") != payload_type:
            raise VerificationError("intoto entry payloadType differs from the envelope")
        phash = content["payloadHash"]
        if phash.get("algorithm") != "sha256" or not hmac.compare_digest(
            str(phash.get("value", "")), hashlib.sha256(payload).hexdigest()
        ):
            raise VerificationError("intoto entry payload hash does not match the envelope")
        if "payload" in benv and _b64_twice(benv["payload"], "payload") != payload:
            raise VerificationError("intoto entry payload differs from the envelope")
        entry_sigs: set[bytes] = set()
        for s in benv.get("signatures") or []:
            sig = _b64_twice(s["sig"], "signature")
            try:
                cert = x509.load_pem_x509_certificate(_b64(s["publicKey"], "publicKey"))
            except ValueError:
                raise VerificationError(
                    "intoto log entry: publicKey is not a PEM certificate"
                ) from None
            if cert.public_bytes(serialization.Encoding.DER) != leaf_der:
                raise VerificationError("intoto entry names another signing certificate")
            entry_sigs.add(sig)
        if not entry_sigs or entry_sigs != signatures:
            raise VerificationError("intoto entry signatures do not match the envelope")
    except VerificationError:
        raise
    except (KeyError, TypeError, AttributeError):
        raise VerificationError("intoto log entry body lacks a required field") from None


def check_log_key_validity(root: TrustedRoot, entry: Any, *, other_keys: bool = False) -> None:
    """An entry's integrated time must lie inside the validity (a closed interval) of the
    log key its ``logId`` names. sigstore 4.5.1 verifies with expired log keys and never
    compares, so a log key retired before the entry would still vouch for it. An entry
    without an integrated time (Rekor v2) is timed by its TSA instead. ``other_keys``:
    bare Rekor keys (no validity) may have verified an entry the root does not name."""
    if not entry.integrated_time:
        return
    at = datetime.fromtimestamp(entry.integrated_time, tz=UTC)
    for tlog in root._inner.tlogs:
        if not hmac.compare_digest(tlog.log_id.key_id, entry.log_id.key_id):
            continue
        period = tlog.public_key.valid_for
        if period is None:
            return
        if period.start is not None and at < period.start:
            raise VerificationError("log entry integrated before its log key's validity")
        if period.end is not None and at > period.end:
            raise VerificationError("log entry integrated after its log key's validity ended")
        return
    if not other_keys:
        raise VerificationError("log entry's logId names no log of the trusted root")


@dataclass(frozen=True)
class KeylessResult:
    envelope: Envelope | None
    signer: str


def verify_keyless(
    raw: bytes,
    *,
    trusted_root: Path,
    identity: str,
    issuer: str,
    artifact_sha256: bytes | None,
) -> KeylessResult:
    """Verify a certificate-based Sigstore bundle fully offline against ``trusted_root``."""
    root = load_trusted_root(trusted_root)
    try:
        bundle = Bundle.from_json(raw)
    except SigstoreError as exc:
        msg = str(exc)
        code = ReasonCode.SIGNATURE_INVALID
        if "inclusion proof" in msg or "inclusionProof" in msg or "checkpoint" in msg:
            code = ReasonCode.TRANSPARENCY_UNAVAILABLE
        raise SignatureError(f"invalid Sigstore bundle: {msg[:300]}", code) from None
    except Exception as exc:
        raise SignatureError(f"invalid Sigstore bundle: {type(exc).__name__}: {exc}") from None
    verifier = GateVerifier(trusted_root=root)
    policy = Identity(identity=identity, issuer=issuer)
    try:
        check_log_key_validity(root, bundle.log_entry._inner)
        if bundle._inner.dsse_envelope is not None:
            ptype, payload = verifier.verify_dsse(bundle, policy)
            sigs = bundle._inner.dsse_envelope.signatures
            from trustload.formats.dsse import DsseSignature

            envelope = Envelope(
                ptype, payload, tuple(DsseSignature(s.keyid or "", s.sig) for s in sigs)
            )
            return KeylessResult(envelope, identity)
        if artifact_sha256 is None:
            raise SignatureError("bundle signs a message but no artifact digest was given")
        verifier.verify_artifact(
            Hashed(algorithm=HashAlgorithm.SHA2_256, digest=artifact_sha256), bundle, policy
        )
        return KeylessResult(None, identity)
    except SignatureError:
        raise
    except Exception as exc:
        raise SignatureError(
            f"Sigstore verification failed: {type(exc).__name__}: {str(exc)[:300]}"
        ) from None


_EC_DETAILS = {
    "secp256r1": common_v1.PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
    "secp384r1": common_v1.PublicKeyDetails.PKIX_ECDSA_P384_SHA_384,
    "secp521r1": common_v1.PublicKeyDetails.PKIX_ECDSA_P521_SHA_512,
}


def _rekor_key_proto(pem: bytes) -> common_v1.PublicKey:
    """A bare Rekor public key (``--rekor-key``) in the form sigstore's keyring takes."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    from trustload.crypto.keys import load_public_key_pem

    try:
        key = load_public_key_pem(pem)
    except ValueError:
        raise SignatureError(
            "a configured Rekor key is not a usable public key", ReasonCode.TRANSPARENCY_UNAVAILABLE
        ) from None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_DETAILS:
        details = _EC_DETAILS[key.curve.name]
    elif isinstance(key, ed25519.Ed25519PublicKey):
        details = common_v1.PublicKeyDetails.PKIX_ED25519
    elif isinstance(key, rsa.RSAPublicKey):
        details = common_v1.PublicKeyDetails.PKIX_RSA_PKCS1V15_2048_SHA256
    else:
        raise SignatureError("unsupported Rekor key type", ReasonCode.TRANSPARENCY_UNAVAILABLE)
    # ProtoBytes fields take their JSON (base64) form.
    return common_v1.PublicKey(
        raw_bytes=base64.b64encode(public_der(key)).decode("ascii"),  # type: ignore[arg-type]
        key_details=details,
    )


def _log_keyring(trusted_root: Path | None, rekor_keys: tuple[bytes, ...]) -> Any:
    """The transparency logs a key bundle's entry may come from: the trusted root's
    tlogs (expired keys included: the entry may predate a rotation) and bare keys."""
    keys: list[common_v1.PublicKey] = []
    if trusted_root is not None:
        root = load_trusted_root(trusted_root)
        keys.extend(root._get_tlog_keys(root._inner.tlogs, KeyringPurpose.VERIFY))
    keys.extend(_rekor_key_proto(pem) for pem in rekor_keys)
    if not keys:
        raise SignatureError(
            "log entry present but no transparency log key to verify it",
            ReasonCode.TRANSPARENCY_UNAVAILABLE,
        )
    return RekorKeyring(Keyring(keys))


def _key_entry_matches(
    kind: str,
    version: str,
    spec: dict[str, Any],
    obj: dict[str, Any],
    key: PublicKey,
    artifact_sha256: bytes | None,
    envelope: Envelope | None,
) -> bool:
    """The entry body records this signature, this key and this artifact (or payload)."""
    if kind == "hashedrekord" and version == "0.0.1":
        if artifact_sha256 is None or envelope is not None:
            raise SignatureError("hashedrekord entry for a non-message bundle")
        sig_b64 = obj["messageSignature"]["signature"]
        h = spec["data"]["hash"]
        entry_sig = base64.b64decode(spec["signature"]["content"], validate=True)
        entry_key = serialization.load_pem_public_key(
            base64.b64decode(spec["signature"]["publicKey"]["content"], validate=True)
        )
        return (
            h.get("algorithm") == "sha256"
            and hmac.compare_digest(str(h.get("value", "")), artifact_sha256.hex())
            and hmac.compare_digest(entry_sig, base64.b64decode(sig_b64, validate=True))
            and entry_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == public_der(key)
        )
    elif kind == "dsse" and version == "0.0.1":
        if envelope is None:
            raise SignatureError("dsse entry for a non-DSSE bundle")
        ph = spec["payloadHash"]
        entry_sigs = set()
        for s in spec.get("signatures") or []:
            entry_sigs.add(base64.b64decode(s["signature"], validate=True))
            vkey = serialization.load_pem_public_key(base64.b64decode(s["verifier"], validate=True))
            if vkey.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ) != public_der(key):
                raise SignatureError("log entry names another key")
        return (
            ph.get("algorithm") == "sha256"
            and hmac.compare_digest(
                str(ph.get("value", "")), hashlib.sha256(envelope.payload).hexdigest()
            )
            and entry_sigs == {s.sig for s in envelope.signatures}
        )
    else:
        raise SignatureError(f"unsupported log entry kind {kind}/{version} for a key bundle")


def verify_managed_key_bundle(
    obj: dict[str, Any],
    raw: bytes,
    *,
    key: PublicKey,
    trusted_root: Path | None,
    artifact_sha256: bytes | None,
    envelope: Envelope | None,
    rekor_keys: tuple[bytes, ...] = (),
) -> None:
    """Verify a public-key bundle's transparency-log entry (signature checked by caller).

    The caller has already verified the signature with the trusted key; here the
    single log entry must carry a valid inclusion proof with a signed checkpoint (and
    SET when present) from a log of ``trusted_root`` or one of ``rekor_keys``, and its
    body must record this signature, this key and this artifact digest.
    """
    keyring = _log_keyring(trusted_root, rekor_keys)
    try:
        inner = RawBundle.from_json(raw)
    except Exception as exc:
        raise SignatureError(
            f"invalid Sigstore bundle: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    entries = inner.verification_material.tlog_entries or []
    if len(entries) != 1:
        raise SignatureError("expected exactly one transparency log entry")
    try:
        entry = TransparencyLogEntry(entries[0])
    except SigstoreError as exc:
        raise SignatureError(f"log entry: {exc}", ReasonCode.TRANSPARENCY_UNAVAILABLE) from None
    try:
        entry._verify(keyring)
        if trusted_root is not None:
            root = load_trusted_root(trusted_root)
            check_log_key_validity(root, entry._inner, other_keys=bool(rekor_keys))
    except Exception as exc:
        raise SignatureError(f"invalid log entry: {type(exc).__name__}: {str(exc)[:200]}") from None
    kv = entry._inner.kind_version
    try:
        spec = entry_body(entry._inner.canonicalized_body)["spec"]
        ok = _key_entry_matches(kv.kind, kv.version, spec, obj, key, artifact_sha256, envelope)
    except SignatureError:
        raise
    except VerificationError as exc:
        raise SignatureError(str(exc)) from None
    except Exception as exc:
        raise SignatureError(f"malformed log entry body: {type(exc).__name__}") from None
    if not ok:
        raise SignatureError("transparency log entry is inconsistent with the bundle")
