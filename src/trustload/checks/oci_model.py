"""The model-signature check for a model stored as an OCI artifact, and the dispatch
that picks it.

An OCI model's identity is its manifest digest: the manifest pins every layer by
digest and size, and cosign signs the manifest digest (a simple-signing payload in the
``.sig`` tag, or a Sigstore bundle referrer). So "is this exact set of bytes what a
trusted signer signed?" is three facts, all checked here over what is on disk now:

1. the manifest bytes the layout carries hash to the layout's digest;
2. the files are exactly the manifest's layers (same paths), each hashing to its layer
   digest and of its layer size (hashed in parallel, constant-time compares);
3. a trusted signer signed that digest (:func:`trustload.checks.image.first_valid_signature`,
   with the gate's ``[gate]`` trust: keys, certificate identities, Rekor keys).

Failures use the model-signature codes (SIGNATURE_MISSING, SIGNATURE_INVALID,
TRANSPARENCY_UNAVAILABLE), never the image ones, so the engine and the policy treat an
OCI model exactly as any other model.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from datetime import datetime

from trustload.checks.signature import NAME, SignatureOutcome, check_model_signature
from trustload.decision import CheckResult, ReasonCode
from trustload.digests import (
    FileEntry,
    MeasuredArtifact,
    ModelLayout,
    digests_equal,
    measure_layout,
)
from trustload.errors import FormatError, TrustloadError
from trustload.facts import TrustAnchors
from trustload.oci.evidence import ImageEvidence


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _failed(code: ReasonCode, detail: str, ms: float = 0.0) -> SignatureOutcome:
    return SignatureOutcome(CheckResult.failed(NAME, code, detail[:500], ms), None, None)


def _files_of(layout: ModelLayout) -> tuple[FileEntry, ...]:
    """Each file's digest: from the digests the cache computed while it wrote these very
    files in this run (:mod:`trustload.streamhash`, still describing them), else hashed
    now. The loader re-hashes what it loads either way."""
    from trustload.streamhash import known_entries

    known = known_entries(layout)
    if known is not None:
        return known
    return measure_layout(replace(layout, oci_manifest=None, digest=None, known=())).files


def measure_oci_layout(layout: ModelLayout) -> MeasuredArtifact:
    """Facts 1 and 2 above; the artifact digest is the manifest digest. Raises
    FormatError(DIGEST_MISMATCH) naming the first difference."""
    from trustload.oci.modelpack import parse_model_manifest

    raw, digest = layout.oci_manifest, layout.digest
    if raw is None or digest is None:
        raise FormatError(ReasonCode.DIGEST_MISMATCH, "not an OCI model layout")
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    if not digests_equal(actual, digest):
        raise FormatError(ReasonCode.DIGEST_MISMATCH, f"manifest hashes to {actual}, not {digest}")
    expected = parse_model_manifest(raw).entries()
    if sorted(e.path for e in expected) != sorted(rel for rel, _ in layout.files):
        raise FormatError(ReasonCode.DIGEST_MISMATCH, "the files are not the manifest's layers")
    measured = _files_of(layout)
    for want, got in zip(expected, measured, strict=True):
        if want.size != got.size or not digests_equal(want.sha256, got.sha256):
            raise FormatError(
                ReasonCode.DIGEST_MISMATCH, f"{got.path!r} differs from its layer {want.sha256}"
            )
    return MeasuredArtifact("directory", digest, measured)


def check_oci_model_signature(
    layout: ModelLayout, evidence: ImageEvidence, anchors: TrustAnchors, *, now: datetime
) -> SignatureOutcome:
    """Facts 1 to 3 above, for the bytes of ``layout``."""
    from trustload.checks.image import first_valid_signature

    start = time.perf_counter()

    def fail(code: ReasonCode, detail: str) -> SignatureOutcome:
        return _failed(code, detail, _ms(start))

    if layout.oci_manifest is None or layout.digest is None:
        return fail(ReasonCode.SIGNATURE_INVALID, "cosign evidence for a model that is not OCI")
    if not digests_equal(evidence.digest, layout.digest):
        return fail(ReasonCode.SIGNATURE_INVALID, f"evidence is for {evidence.digest}")
    found = first_valid_signature(evidence, anchors, now=now)
    if found.signer is None:
        if not evidence.signatures and not evidence.referrers:
            return fail(ReasonCode.SIGNATURE_MISSING, "; ".join(found.problems))
        code = (
            ReasonCode.TRANSPARENCY_UNAVAILABLE
            if found.transparency_missing
            else ReasonCode.SIGNATURE_INVALID
        )
        return fail(code, "; ".join(found.problems))
    try:
        measured = measure_oci_layout(layout)
    except TrustloadError as exc:
        return fail(ReasonCode.SIGNATURE_INVALID, exc.message)
    except OSError as exc:
        return fail(ReasonCode.SIGNATURE_INVALID, f"cannot read the model: {exc.strerror}")
    detail = (
        f"cosign signature over manifest {layout.digest} ({len(measured.files)} layers "
        f"verified), signer {found.signer} ({found.where})"
    )
    return SignatureOutcome(
        CheckResult.passed(NAME, detail, _ms(start)), measured.files, found.signer
    )


def check_signature(
    layout: ModelLayout,
    evidence: bytes | ImageEvidence | None,
    anchors: TrustAnchors,
    *,
    now: datetime,
) -> SignatureOutcome:
    """The one model-signature check: cosign evidence for OCI models, a signature
    bundle for everything else; the wrong kind for the layout is SIGNATURE_INVALID."""
    if isinstance(evidence, ImageEvidence):
        return check_oci_model_signature(layout, evidence, anchors, now=now)
    if layout.oci_manifest is not None and evidence is not None:
        detail = "an OCI model is signed cosign-style over its manifest digest, not by a bundle"
        return _failed(ReasonCode.SIGNATURE_INVALID, detail)
    if layout.oci_manifest is not None:
        detail = "no cosign signature for the model's manifest digest"
        return _failed(ReasonCode.SIGNATURE_MISSING, detail)
    return check_model_signature(layout, evidence, anchors, now=now)
