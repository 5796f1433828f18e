"""The image checks (R2.5): is this image digest signed, and attested, by whom we trust?

Pure: facts in (:class:`~trustload.oci.evidence.ImageEvidence`, already digest-checked
by the reader), a :class:`CheckResult` out. Any one valid signature suffices, legacy
``.sig`` layer or Sigstore bundle referrer. A failing image check is
IMAGE_SIGNATURE_INVALID, or TRANSPARENCY_UNAVAILABLE when some signature verified but its
required Rekor SET was absent; a reader error on the image manifest itself keeps its own
code (NOT_FOUND, DIGEST_MISMATCH, REGISTRY_UNAVAILABLE, ...).

Attestations reuse :func:`trustload.checks.attestation.check_attestation` (envelope,
subject == digest, git SHA / container digest / dataset snapshot coherence, validity):
there is no second copy of those checks here, only the choice of which envelope to run
them on (the first whose verified statement has the requested predicate type).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from trustload.checks.attestation import CHECK as ATTESTATION_CHECK
from trustload.checks.attestation import check_attestation
from trustload.decision import CheckResult, ReasonCode
from trustload.errors import SignatureError, TrustloadError
from trustload.facts import Expectations, TrustAnchors
from trustload.formats.cosign import RekorSet, b64, parse_rekor_set, parse_simple_signing
from trustload.formats.dsse import IN_TOTO_PAYLOAD_TYPE
from trustload.formats.intoto import parse_statement, subject_matches
from trustload.oci.evidence import ImageEvidence, LayerEvidence, ReferrerEvidence

NAME = "image_signature"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
"""What cosign 3 signs an image with when it writes a Sigstore bundle referrer."""
_PASSTHROUGH = (
    ReasonCode.NOT_FOUND,
    ReasonCode.DIGEST_MISMATCH,
    ReasonCode.REGISTRY_UNAVAILABLE,
    ReasonCode.REGISTRY_NOT_ALLOWED,
    ReasonCode.AUTH_FAILED,
    ReasonCode.TLS_POLICY,
)
PREDICATE_TYPES = {
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
    "custom": "https://cosign.sigstore.dev/attestation/v1",
}
"""cosign ``--type`` short names (cosign's options/predicate.go); a full URI is taken as is."""


def predicate_uri(name: str) -> str | None:
    """The predicate type URI ``--type NAME`` means, or None when it means nothing."""
    if name in PREDICATE_TYPES:
        return PREDICATE_TYPES[name]
    if name.startswith(("https://", "http://")) and len(name) <= 512:
        return name
    return None


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def verify_layer(ev: LayerEvidence, digest: str, anchors: TrustAnchors, now: datetime) -> str:
    """One simple-signing layer; returns the signer or raises SignatureError."""
    from trustload.crypto.cosign import verify_cosign_signature

    code = ReasonCode.IMAGE_SIGNATURE_INVALID
    if ev.blob is None:
        raise SignatureError(f"payload unreadable: {ev.error}", code)
    payload = parse_simple_signing(ev.blob, code=code)
    if not hmac.compare_digest(payload.manifest_digest, digest):
        raise SignatureError(f"payload names another image ({payload.manifest_digest})", code)
    if ev.layer.signature_b64 is None:
        raise SignatureError("layer carries no signature annotation", code)
    signature = b64(ev.layer.signature_b64, code=code, what="signature", max_len=16 * 1024)
    rekor: RekorSet | TrustloadError | None = None
    if ev.layer.bundle_json is not None:  # judged only where a SET is required
        try:
            rekor = parse_rekor_set(ev.layer.bundle_json, code=code)
        except TrustloadError as exc:
            rekor = exc
    return verify_cosign_signature(
        hashlib.sha256(ev.blob).digest(),
        signature,
        certificate=ev.layer.certificate_pem,
        chain=[ev.layer.chain_pem] if ev.layer.chain_pem else [],
        rekor=rekor,
        anchors=anchors,
        now=now,
        code=code,
    )


def verify_referrer(ev: ReferrerEvidence, digest: str, anchors: TrustAnchors, now: datetime) -> str:
    """A cosign 3 Sigstore bundle: a message signature over the digest, or a DSSE
    ``cosign/sign/v1`` statement whose subject is the digest."""
    from trustload.crypto.verify import verify_bundle

    code = ReasonCode.IMAGE_SIGNATURE_INVALID
    if ev.subject is None or not hmac.compare_digest(ev.subject, digest):
        raise SignatureError(f"referrer {ev.manifest_digest} has subject {ev.subject}", code)
    if ev.bundle is None:
        raise SignatureError(f"bundle unreadable: {ev.error}", code)
    if anchors.rekor_keys and anchors.trusted_root is None:
        raise SignatureError("a bundle's log entry is verified with --trusted-root only", code)
    try:
        verified = verify_bundle(
            ev.bundle, anchors, now=now, artifact_sha256=bytes.fromhex(digest.split(":", 1)[1])
        )
    except TrustloadError as exc:
        raise SignatureError(
            exc.message,
            ReasonCode.TRANSPARENCY_UNAVAILABLE
            if exc.code == ReasonCode.TRANSPARENCY_UNAVAILABLE
            else code,
        ) from None
    if verified.envelope is None:
        return verified.signer
    if verified.envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise SignatureError("bundle envelope is not an in-toto statement", code)
    statement = parse_statement(verified.envelope.payload, code=code)
    if statement.predicate_type != COSIGN_SIGN_PREDICATE:
        raise SignatureError(f"bundle is a {statement.predicate_type!r:.80}, not a signature", code)
    if not subject_matches(statement, digest):
        raise SignatureError("bundle statement's subject is another digest", code)
    return verified.signer


@dataclass(frozen=True)
class Signed:
    """The outcome of looking for one valid signature: who signed (where), or why not."""

    signer: str | None
    where: str
    problems: tuple[str, ...]
    transparency_missing: bool  # some signature verified but its required SET was absent


def first_valid_signature(
    evidence: ImageEvidence, anchors: TrustAnchors, *, now: datetime
) -> Signed:
    """Any one valid signature suffices: ``.sig`` layers first, then bundle referrers."""
    problems: list[str] = []
    unavailable = False
    candidates: list[tuple[str, LayerEvidence | ReferrerEvidence]] = [
        (f".sig layer {ev.index}", ev) for ev in evidence.signatures
    ] + [(f"referrer {ev.manifest_digest[:19]}", ev) for ev in evidence.referrers]
    for where, ev in candidates:
        try:
            if isinstance(ev, LayerEvidence):
                signer = verify_layer(ev, evidence.digest, anchors, now)
            else:
                signer = verify_referrer(ev, evidence.digest, anchors, now)
        except TrustloadError as exc:
            unavailable = unavailable or exc.code == ReasonCode.TRANSPARENCY_UNAVAILABLE
            problems.append(f"{where}: {exc.message}")
            continue
        except Exception as exc:  # fail closed, never a traceback
            problems.append(f"{where}: {type(exc).__name__}")
            continue
        return Signed(signer, where, (), False)
    for missing in (evidence.sig_error, evidence.referrers_error):
        if missing:
            problems.append(missing)
    if not candidates:
        problems.insert(0, "no cosign signature for this digest")
    return Signed(None, "", tuple(problems), unavailable)


def check_image_signature(
    evidence: ImageEvidence, anchors: TrustAnchors, *, now: datetime
) -> CheckResult:
    start = time.perf_counter()
    if evidence.manifest_error is not None:
        err = evidence.manifest_error
        code = err.code if err.code in _PASSTHROUGH else ReasonCode.IMAGE_SIGNATURE_INVALID
        return CheckResult.failed(NAME, code, f"image manifest: {err.message}"[:500], _ms(start))
    found = first_valid_signature(evidence, anchors, now=now)
    if found.signer is not None:
        return CheckResult.passed(
            NAME, f"{evidence.digest} signed by {found.signer} ({found.where})", _ms(start)
        )
    code = (
        ReasonCode.TRANSPARENCY_UNAVAILABLE
        if found.transparency_missing
        else ReasonCode.IMAGE_SIGNATURE_INVALID
    )
    return CheckResult.failed(NAME, code, "; ".join(found.problems)[:500], _ms(start))


def _attestation_log(
    layer: LayerEvidence | None,
    blob: bytes,
    signer: str | None,
    anchors: TrustAnchors,
    now: datetime,
) -> CheckResult | None:
    """With Rekor keys configured, an attestation's log entry is required too: a ``.att``
    layer's SET (bound to its payload and signer); a bundle's entry needs the trusted root.
    Returns a failing result, or None when the requirement is met or does not apply."""
    from trustload.crypto.cosign import verify_attestation_set
    from trustload.formats.dsse import parse_envelope

    if not anchors.rekor_keys:
        return None
    code = ReasonCode.ATTESTATION_INVALID
    if layer is None:
        if anchors.trusted_root is not None:
            return None  # verify_bundle verified the entry against the trusted root
        return CheckResult.failed(
            ATTESTATION_CHECK, code, "a bundle's log entry is verified with --trusted-root only"
        )
    if layer.layer.bundle_json is None:
        return CheckResult.failed(
            ATTESTATION_CHECK,
            ReasonCode.TRANSPARENCY_UNAVAILABLE,
            f".att layer {layer.index}: a Rekor SET is required and it has none",
        )
    try:
        rset = parse_rekor_set(layer.layer.bundle_json, code=code)
        verify_attestation_set(
            rset,
            payload=parse_envelope(blob, code=code).payload,
            signer_fingerprint=signer or "",
            anchors=anchors,
            now=now,
            code=code,
        )
    except TrustloadError as exc:
        return CheckResult.failed(
            ATTESTATION_CHECK, code, f".att layer {layer.index}: {exc.message}"[:500]
        )
    return None


def check_image_attestation(
    evidence: ImageEvidence,
    anchors: TrustAnchors,
    *,
    predicate_type: str,
    expect: Expectations,
    now: datetime,
    clock_skew: timedelta,
) -> list[CheckResult]:
    """The first attestation (``.att`` layer, then bundle referrer) whose verified statement
    is of ``predicate_type`` and passes every check wins; else the first of that type's
    failures, else ATTESTATION_INVALID (nothing verified) or ATTESTATION_MISSING."""
    envelopes: list[tuple[str, bytes | None, str | None, LayerEvidence | None]] = [
        (f".att layer {ev.index}", ev.blob, ev.error, ev) for ev in evidence.attestations
    ]
    for ref in evidence.referrers:
        if ref.subject == evidence.digest:
            envelopes.append((f"referrer {ref.manifest_digest[:19]}", ref.bundle, ref.error, None))
    first_of_type: list[CheckResult] | None = None
    first_invalid: list[CheckResult] | None = None
    for where, blob, error, layer in envelopes:
        if blob is None:
            first_invalid = first_invalid or [
                CheckResult.failed(
                    ATTESTATION_CHECK, ReasonCode.ATTESTATION_INVALID, f"{where}: {error}"[:500]
                )
            ]
            continue
        results, facts = check_attestation(
            blob,
            anchors,
            artifact_digest=evidence.digest,
            expect=expect,
            now=now,
            clock_skew=clock_skew,
        )
        if facts is None:
            first_invalid = first_invalid or [
                CheckResult(r.name, r.ok, r.code, f"{where}: {r.detail}"[:500], r.ms)
                for r in results
            ]
            continue
        if facts.predicate_type != predicate_type:
            continue
        log_failure = _attestation_log(layer, blob, facts.signer, anchors, now)
        if log_failure is not None:
            results = [log_failure, *results[1:]]
        if all(r.ok for r in results):
            return results
        first_of_type = first_of_type or results
    if first_of_type is not None:
        return first_of_type
    if first_invalid is not None:
        return first_invalid
    detail = f"no attestation of type {predicate_type} for {evidence.digest}"
    if evidence.att_error:
        detail += f" ({evidence.att_error})"
    return [CheckResult.failed(ATTESTATION_CHECK, ReasonCode.ATTESTATION_MISSING, detail[:500])]
