"""Write ``cosign save``-shaped OCI layouts with throwaway keys, for tests that need
evidence the genuine vectors do not cover (attestations, bundle referrers, hostile input).

The shapes follow cosign 2.x byte for byte where it matters to a verifier: the
simple-signing payload, the ``.sig`` / ``.att`` manifests (one layer per signature,
signature material in annotations) and ``index.json`` entries annotated ``kind``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustload.crypto.keys import PrivateKey, sign_message
from trustload.formats.cosign import (
    DSSE_MEDIA_TYPE,
    SIGSTORE_BUNDLE_MEDIA_TYPE,
    SIMPLE_SIGNING_MEDIA_TYPE,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


def image_manifest(seed: str = "serving") -> bytes:
    """A small, valid OCI image manifest (the blobs it names need not exist)."""
    cfg = hashlib.sha256(seed.encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": 2,
                "digest": f"sha256:{cfg}",
            },
            "layers": [],
        },
        separators=(",", ":"),
    ).encode()


def simple_signing(digest: str, reference: str = "127.0.0.1:5000/serving") -> bytes:
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()


def cosign_sign(key: PrivateKey, payload: bytes) -> str:
    return base64.b64encode(sign_message(key, payload)).decode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layer:
    blob: bytes
    media_type: str = SIMPLE_SIGNING_MEDIA_TYPE
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class LayoutWriter:
    """Collects blobs and index entries, then writes the layout directory."""

    root: Path
    entries: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def blob(self, data: bytes) -> str:
        d = digest_of(data)
        self.blobs[d] = data
        return d

    def descriptor(self, data: bytes, media_type: str) -> dict[str, Any]:
        return {"mediaType": media_type, "size": len(data), "digest": self.blob(data)}

    def add(self, raw: bytes, kind: str | None, media_type: str = OCI_MANIFEST) -> str:
        d = self.blob(raw)
        entry: dict[str, Any] = {"mediaType": media_type, "size": len(raw), "digest": d}
        if kind is not None:
            entry["annotations"] = {"kind": f"dev.cosignproject.cosign/{kind}"}
        self.entries.append(entry)
        return d

    def manifest(self, layers: list[Layer], subject: str | None = None, **extra: Any) -> bytes:
        cfg = b"{}"
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.descriptor(cfg, "application/vnd.oci.image.config.v1+json"),
            "layers": [
                {**self.descriptor(layer.blob, layer.media_type), "annotations": layer.annotations}
                for layer in layers
            ],
        }
        if subject is not None:
            doc["subject"] = {"mediaType": OCI_MANIFEST, "size": 1, "digest": subject}
        doc.update(extra)
        return json.dumps(doc, separators=(",", ":")).encode()

    def write(self) -> Path:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        for d, data in self.blobs.items():
            (self.root / "blobs" / "sha256" / d.split(":", 1)[1]).write_bytes(data)
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": self.entries,
        }
        (self.root / "index.json").write_text(json.dumps(index))
        return self.root


def signed_layout(
    root: Path,
    key: PrivateKey,
    *,
    sig_layers: list[Layer] | None = None,
    att_layers: list[Layer] | None = None,
    referrers: list[bytes] | None = None,
) -> tuple[Path, str]:
    """A layout holding one image; by default signed once by ``key``. Returns (dir, digest)."""
    w = LayoutWriter(root)
    image = image_manifest(root.name)
    digest = w.add(image, "image")
    if sig_layers is None:
        payload = simple_signing(digest)
        sig_layers = [
            Layer(
                payload,
                annotations={"dev.cosignproject.cosign/signature": cosign_sign(key, payload)},
            )
        ]
    if sig_layers:
        w.add(w.manifest(sig_layers), "sigs")
    if att_layers:
        w.add(w.manifest(att_layers), "atts")
    for bundle in referrers or []:
        w.add(
            w.manifest(
                [Layer(bundle, SIGSTORE_BUNDLE_MEDIA_TYPE)],
                subject=digest,
                artifactType=SIGSTORE_BUNDLE_MEDIA_TYPE,
            ),
            None,
        )
    return w.write(), digest


def att_layer(envelope: bytes, predicate_type: str) -> Layer:
    return Layer(envelope, DSSE_MEDIA_TYPE, {"predicateType": predicate_type})


def message_bundle(key: PrivateKey, digest: str) -> bytes:
    """A cosign-3 style Sigstore bundle v0.3: a key-signed message signature over ``digest``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    raw = bytes.fromhex(digest.split(":", 1)[1])
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    sig = key.sign(raw, ec.ECDSA(Prehashed(hashes.SHA256())))
    return json.dumps(
        {
            "mediaType": SIGSTORE_BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": "test"}},
            "messageSignature": {
                "messageDigest": {
                    "algorithm": "SHA2_256",
                    "digest": base64.b64encode(raw).decode(),
                },
                "signature": base64.b64encode(sig).decode(),
            },
        }
    ).encode()


def dsse_bundle(envelope: dict[str, Any]) -> bytes:
    """A Sigstore bundle v0.3 around a key-signed DSSE envelope."""
    return json.dumps(
        {
            "mediaType": SIGSTORE_BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": "test"}},
            "dsseEnvelope": envelope,
        }
    ).encode()


def statement(digest: str, predicate_type: str, predicate: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "image", "digest": {"sha256": digest.split(":", 1)[1]}}],
            "predicateType": predicate_type,
            "predicate": predicate,
        }
    ).encode()


def rekor_set(log_key: PrivateKey, body: dict[str, Any], integrated_time: int) -> str:
    """A SET as Rekor writes it: the log's signature over the canonical Payload."""
    from trustload.crypto.keys import public_der

    payload = {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "integratedTime": integrated_time,
        "logID": hashlib.sha256(public_der(log_key.public_key())).hexdigest(),
        "logIndex": 7,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps(
        {
            "SignedEntryTimestamp": base64.b64encode(sign_message(log_key, canonical)).decode(),
            "Payload": payload,
        }
    )


def dsse_entry(payload: bytes, signer: PrivateKey) -> dict[str, Any]:
    """A Rekor ``dsse`` 0.0.1 entry body for an envelope over ``payload``."""
    from trustload.crypto.keys import public_pem

    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [
                {
                    "signature": "",
                    "verifier": base64.b64encode(public_pem(signer.public_key())).decode(),
                }
            ],
        },
    }


def hashedrekord_entry(data: bytes, signature: bytes, signer: PrivateKey) -> dict[str, Any]:
    """A Rekor ``hashedrekord`` 0.0.1 entry body for a signature over ``data``."""
    from trustload.crypto.keys import public_pem

    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(data).hexdigest()}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {
                    "content": base64.b64encode(public_pem(signer.public_key())).decode()
                },
            },
        },
    }


def blob_bundle(data: bytes, signer: PrivateKey, log_key: PrivateKey | None) -> bytes:
    """``cosign sign-blob --bundle`` output for ``data`` (with a SET when ``log_key``)."""
    import time

    signature = sign_message(signer, data)
    doc: dict[str, Any] = {"base64Signature": base64.b64encode(signature).decode()}
    if log_key is not None:
        entry = hashedrekord_entry(data, signature, signer)
        doc["rekorBundle"] = json.loads(rekor_set(log_key, entry, int(time.time()) - 30))
    return json.dumps(doc).encode()
