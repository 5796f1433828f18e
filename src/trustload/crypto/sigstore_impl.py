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
  and the entry body against the signature, key and artifact digest.

Trust always comes from an explicit ``trusted_root.json``; nothing is fetched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sigstore import dsse as sigstore_dsse
from sigstore._internal.trust import KeyringPurpose
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TransparencyLogEntry, TrustedRoot
from sigstore.verify.policy import Identity
from sigstore.verify.verifier import Verifier
from sigstore_models.bundle.v1 import Bundle as RawBundle
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


class GateVerifier(Verifier):
    """sigstore's Verifier, extended to Rekor ``intoto/0.0.2`` entries (see module doc)."""

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


def _b64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise VerificationError("intoto entry: expected a base64 string")
    return base64.b64decode(text, validate=True)


def _validate_intoto_v002_body(bundle: Bundle, envelope: Any) -> None:
    """The Rekor intoto/0.0.2 body must describe exactly this envelope and certificate."""
    try:
        body = json.loads(bundle.log_entry._inner.canonicalized_body)
        content = body["spec"]["content"]
        benv = content["envelope"]
        payload: bytes = envelope._inner.payload
        if benv.get("payloadType") != envelope._inner.payload_type:
            raise VerificationError("intoto entry payloadType differs from the envelope")
        phash = content["payloadHash"]
        if phash.get("algorithm") != "sha256" or not hmac.compare_digest(
            str(phash.get("value", "")), hashlib.sha256(payload).hexdigest()
        ):
            raise VerificationError("intoto entry payload hash does not match the envelope")
        if "payload" in benv and _b64(_b64(benv["payload"]).decode("ascii")) != payload:
            raise VerificationError("intoto entry payload differs from the envelope")
        leaf_der = bundle.signing_certificate.public_bytes(serialization.Encoding.DER)
        entry_sigs: set[bytes] = set()
        for s in benv.get("signatures") or []:
            sig = _b64(_b64(s["sig"]).decode("ascii"))
            cert = x509.load_pem_x509_certificate(_b64(s["publicKey"]))
            if cert.public_bytes(serialization.Encoding.DER) != leaf_der:
                raise VerificationError("intoto entry names another signing certificate")
            entry_sigs.add(sig)
        env_sigs = {s.sig for s in envelope._inner.signatures}
        if not entry_sigs or entry_sigs != env_sigs:
            raise VerificationError("intoto entry signatures do not match the envelope")
    except VerificationError:
        raise
    except Exception as exc:
        raise VerificationError(f"invalid intoto log entry: {type(exc).__name__}: {exc}") from None


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


def verify_managed_key_bundle(
    obj: dict[str, Any],
    raw: bytes,
    *,
    key: PublicKey,
    trusted_root: Path | None,
    artifact_sha256: bytes | None,
    envelope: Envelope | None,
) -> None:
    """Verify a public-key bundle's transparency-log entry (signature checked by caller).

    The caller has already verified the signature with the trusted key; here the
    single log entry must carry a valid inclusion proof with a signed checkpoint (and
    SET when present) from a log in ``trusted_root``, and its body must record this
    signature, this key and this artifact digest.
    """
    if trusted_root is None:
        raise SignatureError(
            "log entry present but no trusted root to verify it",
            ReasonCode.TRANSPARENCY_UNAVAILABLE,
        )
    root = load_trusted_root(trusted_root)
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
        entry._verify(root.rekor_keyring(KeyringPurpose.VERIFY))
    except Exception as exc:
        raise SignatureError(f"invalid log entry: {type(exc).__name__}: {str(exc)[:200]}") from None
    kv = entry._inner.kind_version
    try:
        body = json.loads(entry._inner.canonicalized_body)
        spec = body["spec"]
        if kv.kind == "hashedrekord" and kv.version == "0.0.1":
            if artifact_sha256 is None or envelope is not None:
                raise SignatureError("hashedrekord entry for a non-message bundle")
            sig_b64 = obj["messageSignature"]["signature"]
            h = spec["data"]["hash"]
            entry_sig = base64.b64decode(spec["signature"]["content"], validate=True)
            entry_key = serialization.load_pem_public_key(
                base64.b64decode(spec["signature"]["publicKey"]["content"], validate=True)
            )
            ok = (
                h.get("algorithm") == "sha256"
                and hmac.compare_digest(str(h.get("value", "")), artifact_sha256.hex())
                and hmac.compare_digest(entry_sig, base64.b64decode(sig_b64, validate=True))
                and entry_key.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                == public_der(key)
            )
        elif kv.kind == "dsse" and kv.version == "0.0.1":
            if envelope is None:
                raise SignatureError("dsse entry for a non-DSSE bundle")
            ph = spec["payloadHash"]
            entry_sigs = set()
            for s in spec.get("signatures") or []:
                entry_sigs.add(base64.b64decode(s["signature"], validate=True))
                vkey = serialization.load_pem_public_key(
                    base64.b64decode(s["verifier"], validate=True)
                )
                if vkey.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                ) != public_der(key):
                    raise SignatureError("log entry names another key")
            ok = (
                ph.get("algorithm") == "sha256"
                and hmac.compare_digest(
                    str(ph.get("value", "")), hashlib.sha256(envelope.payload).hexdigest()
                )
                and entry_sigs == {s.sig for s in envelope.signatures}
            )
        else:
            raise SignatureError(
                f"unsupported log entry kind {kv.kind}/{kv.version} for a key bundle"
            )
    except SignatureError:
        raise
    except Exception as exc:
        raise SignatureError(f"malformed log entry body: {type(exc).__name__}") from None
    if not ok:
        raise SignatureError("transparency log entry is inconsistent with the bundle")
