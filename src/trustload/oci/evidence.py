"""Gather an image's cosign evidence through an :class:`OciReader` (the I/O half).

The pure checks in :mod:`trustload.checks.image` decide on what is gathered here. Every
byte comes from the reader, which has already checked it against its digest and bounded
it; a piece that cannot be read is kept as an error string next to where it would have
been, so that the check can say which signature failed and why, and so that one broken
layer never hides a valid one (any one valid signature suffices).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trustload.decision import ReasonCode
from trustload.errors import TrustloadError
from trustload.formats.cosign import (
    DSSE_MEDIA_TYPE,
    SIGSTORE_BUNDLE_MEDIA_TYPE,
    SIMPLE_SIGNING_MEDIA_TYPE,
    SignatureLayer,
    parse_signature_manifest,
)
from trustload.oci.reader import (
    MAX_ATTESTATION_LAYER_BYTES,
    MAX_REFERRERS,
    MAX_SIGNATURE_LAYER_BYTES,
    OciReader,
)

MAX_BUNDLES_PER_REFERRER = 8


@dataclass(frozen=True)
class LayerEvidence:
    """One ``.sig`` / ``.att`` layer: its annotations and its (digest-checked) blob."""

    index: int
    layer: SignatureLayer
    blob: bytes | None
    error: str | None


@dataclass(frozen=True)
class ReferrerEvidence:
    """One Sigstore bundle found through the referrers API (or its tag fallback)."""

    manifest_digest: str
    subject: str | None  # from the referrer manifest itself, never from the index
    bundle: bytes | None
    error: str | None


@dataclass(frozen=True)
class ImageEvidence:
    digest: str
    manifest_error: TrustloadError | None = None
    sig_error: str | None = None
    signatures: tuple[LayerEvidence, ...] = ()
    att_error: str | None = None
    attestations: tuple[LayerEvidence, ...] = ()
    referrers_error: str | None = None
    referrers: tuple[ReferrerEvidence, ...] = ()


def _tag(digest: str, suffix: str) -> str:
    return digest.replace(":", "-", 1) + suffix


CHANNEL_CODES = frozenset(
    {
        ReasonCode.REGISTRY_UNAVAILABLE,
        ReasonCode.REGISTRY_NOT_ALLOWED,
        ReasonCode.AUTH_FAILED,
        ReasonCode.TLS_POLICY,
    }
)
"""Errors of the channel, not of the evidence: a model gate denies with these codes
(the registry is down) rather than calling the signature missing."""


def _layers(
    reader: OciReader,
    digest: str,
    suffix: str,
    media_type: str,
    limit: int,
    channel_errors: bool = False,
) -> tuple[tuple[LayerEvidence, ...], str | None]:
    code = ReasonCode.IMAGE_SIGNATURE_INVALID
    try:
        manifest = reader.tagged_manifest(_tag(digest, suffix))
        if manifest is None:
            return (), f"no {_tag(digest, suffix)} manifest"
        parsed = parse_signature_manifest(manifest.raw, code=code)
    except TrustloadError as exc:
        if channel_errors and exc.code in CHANNEL_CODES:
            raise
        return (), f"{_tag(digest, suffix)}: {exc.message}"
    out: list[LayerEvidence] = []
    for i, layer in enumerate(parsed.layers):
        if layer.descriptor.media_type != media_type:
            continue  # other attachments (text/plain, SBOMs, ...) are not signatures
        try:
            out.append(LayerEvidence(i, layer, reader.blob(layer.descriptor, limit), None))
        except TrustloadError as exc:
            out.append(LayerEvidence(i, layer, None, exc.message))
    return tuple(out), None


def image_manifest(reader: OciReader, digest: str) -> TrustloadError | None:
    """Fetch the image manifest itself: it must exist and hash to the pinned digest."""
    try:
        reader.manifest(digest)
    except TrustloadError as exc:
        return exc
    return None


def collect_signatures(reader: OciReader, digest: str) -> ImageEvidence:
    error = image_manifest(reader, digest)
    if error is not None:
        return ImageEvidence(digest, manifest_error=error)
    sigs, sig_error = _layers(
        reader, digest, ".sig", SIMPLE_SIGNING_MEDIA_TYPE, MAX_SIGNATURE_LAYER_BYTES
    )
    return ImageEvidence(digest, signatures=sigs, sig_error=sig_error)


def collect_model_evidence(reader: OciReader, digest: str) -> ImageEvidence:
    """A model artifact's signatures (``.sig``, else bundle referrers) and ``.att``
    attestations; its manifest was fetched and verified by the caller. A registry that
    cannot be reached raises (its own code) instead of reading as "no signature"."""
    sigs, sig_error = _layers(
        reader, digest, ".sig", SIMPLE_SIGNING_MEDIA_TYPE, MAX_SIGNATURE_LAYER_BYTES, True
    )
    atts, att_error = _layers(
        reader, digest, ".att", DSSE_MEDIA_TYPE, MAX_ATTESTATION_LAYER_BYTES, True
    )
    evidence = ImageEvidence(
        digest, signatures=sigs, sig_error=sig_error, attestations=atts, att_error=att_error
    )
    if not sigs or not atts:  # cosign 3 writes Sigstore bundles as referrers instead
        evidence = collect_referrers(reader, evidence)
    return evidence


def collect_attestations(reader: OciReader, evidence: ImageEvidence) -> ImageEvidence:
    atts, att_error = _layers(
        reader, evidence.digest, ".att", DSSE_MEDIA_TYPE, MAX_ATTESTATION_LAYER_BYTES
    )
    return replace(evidence, attestations=atts, att_error=att_error)


def collect_referrers(reader: OciReader, evidence: ImageEvidence) -> ImageEvidence:
    """Sigstore bundle referrers: every referrer manifest is fetched and its own ``subject``
    recorded (an index, and the fallback tag's ``artifactType`` above all, can lie)."""
    code = ReasonCode.IMAGE_SIGNATURE_INVALID
    found: list[ReferrerEvidence] = []
    error: str | None = None
    try:
        descriptors = reader.referrers(evidence.digest)[:MAX_REFERRERS]
    except TrustloadError as exc:
        descriptors, error = [], f"referrers: {exc.message}"
    for desc in descriptors:
        try:
            parsed = parse_signature_manifest(reader.manifest(desc.digest).raw, code=code)
        except TrustloadError as exc:
            found.append(ReferrerEvidence(desc.digest, None, None, exc.message))
            continue
        bundles = [
            layer
            for layer in parsed.layers
            if layer.descriptor.media_type == SIGSTORE_BUNDLE_MEDIA_TYPE
        ][:MAX_BUNDLES_PER_REFERRER]
        for layer in bundles:
            try:
                blob = reader.blob(layer.descriptor, MAX_ATTESTATION_LAYER_BYTES)
                found.append(ReferrerEvidence(desc.digest, parsed.subject, blob, None))
            except TrustloadError as exc:
                found.append(ReferrerEvidence(desc.digest, parsed.subject, None, exc.message))
    return replace(evidence, referrers=tuple(found), referrers_error=error)
