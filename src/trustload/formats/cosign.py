"""cosign's evidence formats, parsed strictly and bounded (no crypto here).

* the simple-signing payload a cosign image signature covers;
* the ``.sig`` / ``.att`` manifests (one signature or attestation per layer, the
  signature material in annotations);
* the Rekor "SET bundle" (``dev.sigstore.cosign/bundle``, ``rekorBundle``) and the
  ``hashedrekord`` entry body it carries;
* the legacy blob bundle ``cosign sign-blob --bundle`` writes.

Everything is evidence from a registry or a file an attacker may control: every field is
type-checked, every size bounded, and every refusal is a :class:`FormatError` carrying the
caller's reason code (IMAGE_SIGNATURE_INVALID or SIGNATURE_INVALID), never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trustload.decision import ReasonCode
from trustload.errors import FormatError
from trustload.formats.jsonstrict import loads_strict, require_object
from trustload.identifiers import Kind
from trustload.oci.reader import (
    MAX_LAYERS_IN_SIGNATURE_MANIFEST,
    MAX_MANIFEST_BYTES,
    Descriptor,
)

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
SIGSTORE_BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIMPLE_SIGNING_TYPE = "cosign container image signature"
ANN_SIGNATURE = "dev.cosignproject.cosign/signature"
ANN_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANN_CHAIN = "dev.sigstore.cosign/chain"
ANN_BUNDLE = "dev.sigstore.cosign/bundle"
ANN_PREDICATE_TYPE = "predicateType"
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_SIGNATURE_BYTES = 16 * 1024
MAX_ANNOTATION_CHARS = 64 * 1024
MAX_BODY_BYTES = 256 * 1024


def b64(value: Any, *, code: ReasonCode, what: str, max_len: int) -> bytes:
    """Standard base64 with padding, as cosign writes it; anything else is refused.

    Line breaks are dropped first, as Go's ``StdEncoding`` does (some signers wrap at 76).
    """
    if not isinstance(value, str) or len(value) > (max_len * 4) // 3 + 4 + max_len // 32:
        raise FormatError(code, f"{what}: not base64 or too large")
    try:
        out = base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(code, f"{what}: invalid base64") from None
    if not out:
        raise FormatError(code, f"{what}: empty")
    return out


@dataclass(frozen=True)
class SimpleSigning:
    """The parts of a simple-signing payload a verifier may rely on."""

    manifest_digest: str
    docker_reference: str | None


def parse_simple_signing(payload: bytes, *, code: ReasonCode) -> SimpleSigning:
    """``{"critical": {"identity", "image": {"docker-manifest-digest"}, "type"}, "optional"}``."""
    obj = require_object(
        loads_strict(
            payload, code=code, what="simple-signing payload", max_bytes=MAX_PAYLOAD_BYTES
        ),
        code=code,
        what="simple-signing payload",
    )
    critical = require_object(obj.get("critical"), code=code, what="payload 'critical'")
    if critical.get("type") != SIMPLE_SIGNING_TYPE:
        raise FormatError(
            code, f"payload type {critical.get('type')!r:.80} is not a cosign signature"
        )
    image = require_object(critical.get("image"), code=code, what="payload 'critical.image'")
    digest = image.get("docker-manifest-digest")
    if not isinstance(digest, str) or not Kind.DIGEST.accepts(digest):
        raise FormatError(code, "payload has no sha256 docker-manifest-digest")
    identity = critical.get("identity")
    ref: str | None = None
    if isinstance(identity, dict) and isinstance(identity.get("docker-reference"), str):
        ref = identity["docker-reference"][:512]
    return SimpleSigning(digest, ref)


@dataclass(frozen=True)
class SignatureLayer:
    """One layer of a ``.sig`` / ``.att`` manifest: where its blob is and its annotations."""

    descriptor: Descriptor
    signature_b64: str | None
    certificate_pem: bytes | None
    chain_pem: bytes | None
    bundle_json: str | None


@dataclass(frozen=True)
class SignatureManifest:
    """A parsed image manifest (the ``.sig`` / ``.att`` tag, or a referrer)."""

    layers: tuple[SignatureLayer, ...]
    subject: str | None
    artifact_type: str | None
    annotations: Mapping[str, str] = field(default_factory=dict)


def _annotations(value: Any, *, code: ReasonCode, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 64:
        raise FormatError(code, f"{what}: annotations are not a small string map")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str) or len(k) > 256 or len(v) > MAX_ANNOTATION_CHARS:
            raise FormatError(code, f"{what}: annotation {k!r:.60} is not a bounded string")
        out[k] = v
    return out


def parse_descriptor(value: Any, *, code: ReasonCode, what: str) -> Descriptor:
    d = require_object(value, code=code, what=what)
    media = d.get("mediaType")
    digest = d.get("digest")
    size = d.get("size")
    if not isinstance(media, str) or len(media) > 256:
        raise FormatError(code, f"{what}: no mediaType")
    if not isinstance(digest, str) or not Kind.DIGEST.accepts(digest):
        raise FormatError(code, f"{what}: digest is not sha256:<64 hex>")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise FormatError(code, f"{what}: size is not a non-negative integer")
    artifact_type = d.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise FormatError(code, f"{what}: artifactType is not a string")
    ann = _annotations(d.get("annotations"), code=code, what=what)
    return Descriptor(media, digest, size, ann, artifact_type)


def parse_signature_manifest(raw: bytes, *, code: ReasonCode) -> SignatureManifest:
    """An OCI / Docker image manifest with at most MAX_LAYERS_IN_SIGNATURE_MANIFEST layers."""
    obj = require_object(
        loads_strict(raw, code=code, what="signature manifest", max_bytes=MAX_MANIFEST_BYTES),
        code=code,
        what="signature manifest",
    )
    if obj.get("schemaVersion") != 2:
        raise FormatError(code, "signature manifest: schemaVersion is not 2")
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise FormatError(code, "signature manifest: no layers list")
    if len(layers) > MAX_LAYERS_IN_SIGNATURE_MANIFEST:
        raise FormatError(
            code,
            f"signature manifest has {len(layers)} layers "
            f"(more than {MAX_LAYERS_IN_SIGNATURE_MANIFEST}): refused",
        )
    parsed: list[SignatureLayer] = []
    for i, item in enumerate(layers):
        desc = parse_descriptor(item, code=code, what=f"layer {i}")
        ann = desc.annotations
        cert = ann.get(ANN_CERTIFICATE)
        chain = ann.get(ANN_CHAIN)
        parsed.append(
            SignatureLayer(
                descriptor=desc,
                signature_b64=ann.get(ANN_SIGNATURE),
                certificate_pem=cert.encode("utf-8") if cert else None,
                chain_pem=chain.encode("utf-8") if chain else None,
                bundle_json=ann.get(ANN_BUNDLE),
            )
        )
    subject: str | None = None
    if obj.get("subject") is not None:
        subject = parse_descriptor(obj["subject"], code=code, what="subject").digest
    artifact_type = obj.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise FormatError(code, "signature manifest: artifactType is not a string")
    return SignatureManifest(
        tuple(parsed),
        subject,
        artifact_type,
        _annotations(obj.get("annotations"), code=code, what="manifest"),
    )


@dataclass(frozen=True)
class SetPayload:
    """Rekor's ``Payload`` of a SET: what its ``SignedEntryTimestamp`` signs."""

    body: str  # base64 of the canonicalized entry
    integrated_time: int
    log_id: str  # hex SHA-256 of the log's DER public key
    log_index: int

    def canonical(self) -> bytes:
        """RFC 8785 form of ``{body, integratedTime, logID, logIndex}`` (sorted, no spaces).

        The members are base64 / hex strings and integers, for which the JSON
        canonicalization scheme and ``sorted keys, no whitespace`` coincide.
        """
        import json

        doc = {
            "body": self.body,
            "integratedTime": self.integrated_time,
            "logID": self.log_id,
            "logIndex": self.log_index,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True)
class RekorSet:
    signed_entry_timestamp: bytes
    payload: SetPayload


_B64_CHARS = re.compile(r"[A-Za-z0-9+/=]*")


def _int(value: Any, *, code: ReasonCode, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise FormatError(code, f"{what}: not a non-negative 64-bit integer")
    return value


def parse_rekor_set(value: Any, *, code: ReasonCode) -> RekorSet:
    """``{"SignedEntryTimestamp": b64, "Payload": {body, integratedTime, logIndex, logID}}``.

    ``value`` is the annotation's JSON text or the already decoded object (blob bundles).
    Unknown members of ``Payload`` are refused: the SET signs exactly these four.
    """
    if isinstance(value, str):
        value = loads_strict(value, code=code, what="Rekor bundle", max_bytes=MAX_BODY_BYTES * 2)
    obj = require_object(value, code=code, what="Rekor bundle")
    set_bytes = b64(
        obj.get("SignedEntryTimestamp"), code=code, what="SignedEntryTimestamp", max_len=1024
    )
    payload = require_object(obj.get("Payload"), code=code, what="Rekor bundle Payload")
    if set(payload) != {"body", "integratedTime", "logIndex", "logID"}:
        raise FormatError(code, f"Rekor bundle Payload has members {sorted(payload)[:8]}")
    body = payload["body"]
    if (
        not isinstance(body, str)
        or len(body) > MAX_BODY_BYTES
        or _B64_CHARS.fullmatch(body) is None
    ):
        raise FormatError(code, "Rekor bundle body is not bounded base64")
    log_id = payload["logID"]
    if not isinstance(log_id, str) or not Kind.HEX64.accepts(log_id):
        raise FormatError(code, "Rekor bundle logID is not 64 lower-case hex")
    return RekorSet(
        set_bytes,
        SetPayload(
            body=body,
            integrated_time=_int(payload["integratedTime"], code=code, what="integratedTime"),
            log_id=log_id,
            log_index=_int(payload["logIndex"], code=code, what="logIndex"),
        ),
    )


@dataclass(frozen=True)
class HashedRekord:
    """A ``hashedrekord`` v0.0.1 entry: the artifact hash, the signature, the signer's PEM."""

    sha256_hex: str
    signature: bytes
    public_pem: bytes  # a PEM public key or a PEM certificate


def parse_hashedrekord(body_b64: str, *, code: ReasonCode) -> HashedRekord:
    raw = b64(body_b64, code=code, what="Rekor entry body", max_len=MAX_BODY_BYTES)
    obj = require_object(
        loads_strict(raw, code=code, what="Rekor entry body", max_bytes=MAX_BODY_BYTES),
        code=code,
        what="Rekor entry body",
    )
    if obj.get("kind") != "hashedrekord" or obj.get("apiVersion") != "0.0.1":
        raise FormatError(
            code,
            f"Rekor entry is {obj.get('kind')!r:.40}/{obj.get('apiVersion')!r:.20}, "
            "not hashedrekord/0.0.1",
        )
    spec = require_object(obj.get("spec"), code=code, what="hashedrekord spec")
    data = require_object(spec.get("data"), code=code, what="hashedrekord data")
    h = require_object(data.get("hash"), code=code, what="hashedrekord hash")
    if h.get("algorithm") != "sha256" or not isinstance(h.get("value"), str):
        raise FormatError(code, "hashedrekord hash is not sha256")
    if not Kind.HEX64.accepts(h["value"]):
        raise FormatError(code, "hashedrekord hash value is not 64 lower-case hex")
    sig = require_object(spec.get("signature"), code=code, what="hashedrekord signature")
    pk = require_object(sig.get("publicKey"), code=code, what="hashedrekord publicKey")
    return HashedRekord(
        sha256_hex=h["value"],
        signature=b64(
            sig.get("content"),
            code=code,
            what="hashedrekord signature",
            max_len=MAX_SIGNATURE_BYTES,
        ),
        public_pem=b64(
            pk.get("content"), code=code, what="hashedrekord key", max_len=MAX_BODY_BYTES
        ),
    )


@dataclass(frozen=True)
class BlobBundle:
    """``cosign sign-blob --bundle``: ``{base64Signature, cert?, rekorBundle?}``."""

    signature: bytes
    certificate: bytes | None  # PEM or DER of the leaf
    rekor: RekorSet | None


def looks_like_blob_bundle(data: bytes) -> bool:
    """A cheap sniff before the strict parse: cosign's bundle has ``base64Signature``."""
    return data.lstrip()[:1] == b"{" and b'"base64Signature"' in data[: MAX_BODY_BYTES * 2]


def parse_blob_bundle(data: bytes, *, code: ReasonCode) -> BlobBundle:
    obj = require_object(
        loads_strict(data, code=code, what="cosign bundle", max_bytes=MAX_BODY_BYTES * 4),
        code=code,
        what="cosign bundle",
    )
    unknown = set(obj) - {"base64Signature", "cert", "rekorBundle", "RFC3161Timestamp"}
    if unknown:
        raise FormatError(code, f"cosign bundle: unknown members {sorted(unknown)[:5]}")
    signature = b64(
        obj.get("base64Signature"), code=code, what="base64Signature", max_len=MAX_SIGNATURE_BYTES
    )
    cert: bytes | None = None
    if obj.get("cert"):
        cert = b64(obj["cert"], code=code, what="cert", max_len=MAX_BODY_BYTES)
    rekor = (
        None if obj.get("rekorBundle") is None else parse_rekor_set(obj["rekorBundle"], code=code)
    )
    return BlobBundle(signature, cert, rekor)
