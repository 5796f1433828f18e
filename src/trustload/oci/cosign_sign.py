"""cosign 2.x's legacy signature layout, written byte for byte as cosign writes it.

Why byte-exact: ``cosign verify`` (and every tool that mirrors signatures, such as
``skopeo copy``) must accept what ``trustload sign-image`` writes, and the verifier here
must accept what cosign writes; the simplest proof is producing the same bytes.

* Signature (``sha256-<hex>.sig``): one layer per signature, media type
  ``application/vnd.dev.cosign.simplesigning.v1+json``, blob = the simple-signing payload
  (Go ``json.Marshal`` of ``{critical: {identity, image, type}, optional: null}``), the
  base64 ECDSA signature over those bytes in ``dev.cosignproject.cosign/signature``.
* Attestation (``sha256-<hex>.att``): layer ``application/vnd.dsse.envelope.v1+json``
  holding the DSSE envelope, annotations ``predicateType`` and an empty signature.
* Both: an OCI image manifest whose config (``application/vnd.oci.image.config.v1+json``)
  is go-containerregistry's config of ``empty.Image`` with these layers appended: their
  digests as ``diff_ids`` and one empty history entry each. Appending keeps every layer
  already there (others' signatures), as cosign does; an identical layer is not added twice.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from trustload.crypto.keys import load_private_key, sign_message
from trustload.decision import ReasonCode
from trustload.errors import FormatError
from trustload.formats.slsa import SLSA_V1
from trustload.oci.reader import MAX_LAYERS_IN_SIGNATURE_MANIFEST, Descriptor
from trustload.oci.reference import RegistryRef
from trustload.oci.registry import OCI_MANIFEST, RegistryRepository, descriptor_from

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
OCI_CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_TYPE_ANNOTATION = "predicateType"
SIMPLE_SIGNING_TYPE = "cosign container image signature"
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def go_json(obj: Any) -> bytes:
    """``encoding/json.Marshal``: compact, UTF-8, and HTML-significant runes escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def simple_signing_payload(ref: RegistryRef) -> bytes:
    """What ``cosign sign`` signs: the repository (no tag) and the manifest digest."""
    return go_json(
        {
            "critical": {
                "identity": {"docker-reference": f"{ref.host}/{ref.repository}"},
                "image": {"docker-manifest-digest": ref.digest},
                "type": SIMPLE_SIGNING_TYPE,
            },
            "optional": None,
        }
    )


def _descriptor_json(d: Descriptor) -> dict[str, Any]:
    """go-containerregistry's field order: mediaType, size, digest, annotations (sorted)."""
    out: dict[str, Any] = {"mediaType": d.media_type, "size": d.size, "digest": d.digest}
    if d.annotations:
        out["annotations"] = dict(sorted(d.annotations.items()))
    if d.artifact_type:
        out["artifactType"] = d.artifact_type
    return out


def config_for(layers: list[Descriptor]) -> bytes:
    return go_json(
        {
            "architecture": "",
            "created": _GO_ZERO_TIME,
            "history": [{"created": _GO_ZERO_TIME} for _ in layers],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [d.digest for d in layers]},
            "config": {},
        }
    )


def manifest_for(config: Descriptor, layers: list[Descriptor]) -> bytes:
    return go_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor_json(config),
            "layers": [_descriptor_json(d) for d in layers],
        }
    )


def existing_layers(raw: bytes | None) -> list[Descriptor]:
    """The layers of the manifest a ``.sig`` / ``.att`` tag holds now (kept on append)."""
    if raw is None:
        return []
    code = ReasonCode.IMAGE_SIGNATURE_INVALID
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(code, "the existing signature manifest is not JSON") from exc
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list):
        raise FormatError(code, "the existing signature manifest has no layers")
    if len(layers) >= MAX_LAYERS_IN_SIGNATURE_MANIFEST:
        raise FormatError(code, f"the existing signature manifest has {len(layers)} layers")
    return [descriptor_from(x, code=code, what="existing signature manifest") for x in layers]


@dataclass(frozen=True)
class Written:
    tag: str
    manifest_digest: str
    layer: Descriptor
    layers: int


def attach(repo: RegistryRepository, tag: str, blob: bytes, layer: Descriptor) -> Written:
    """Append one layer (already described) under ``tag``, keeping the layers there."""
    current = repo.tagged_manifest(tag)
    layers = existing_layers(current.raw if current else None)
    if layer not in layers:
        repo.push_bytes(blob, layer.media_type)
        layers.append(layer)
    config = config_for(layers)
    config_desc = repo.push_bytes(config, OCI_CONFIG_MEDIA_TYPE)
    raw = manifest_for(config_desc, layers)
    digest = repo.push_manifest(raw, OCI_MANIFEST, tag)
    return Written(tag, digest, layer, len(layers))


def sign_image(
    repo: RegistryRepository, ref: RegistryRef, key_path: Path, password: bytes | None = None
) -> Written:
    """``cosign sign --key``: the image must exist and hash to its digest first."""
    repo.manifest(ref.digest)
    key = load_private_key(key_path, password)
    payload = simple_signing_payload(ref)
    signature = base64.b64encode(sign_message(key, payload)).decode("ascii")
    layer = Descriptor(
        SIMPLE_SIGNING_MEDIA_TYPE,
        *_digest_size(payload),
        annotations={SIGNATURE_ANNOTATION: signature},
    )
    return attach(repo, ref.digest.replace(":", "-", 1) + ".sig", payload, layer)


def attest_image(
    repo: RegistryRepository,
    ref: RegistryRef,
    key_path: Path,
    *,
    git_sha: str,
    container_digest: str,
    dataset_snapshot: str,
    password: bytes | None = None,
    not_after: datetime | None = None,
) -> Written:
    """``cosign attest --type slsaprovenance1 --key``: SLSA v1 provenance in DSSE
    (``not_after``: the end of its validity window, e.g. a model's revalidation date)."""
    from trustload.signing import attest_bytes

    repo.manifest(ref.digest)
    envelope = attest_bytes(
        subject_name=f"{ref.host}/{ref.repository}",
        artifact_digest=ref.digest,
        key_path=key_path,
        git_sha=git_sha,
        container_digest=container_digest,
        dataset_snapshot=dataset_snapshot,
        not_after=not_after,
        password=password,
    )
    layer = Descriptor(
        DSSE_MEDIA_TYPE,
        *_digest_size(envelope),
        annotations={SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: SLSA_V1},
    )
    return attach(repo, ref.digest.replace(":", "-", 1) + ".att", envelope, layer)


def _digest_size(data: bytes) -> tuple[str, int]:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)
