"""Attestation checks: envelope, subject, coherence, validity window.

The envelope (a bare DSSE envelope or a Sigstore bundle with a ``dsseEnvelope``) is
verified first against the trust anchors; the in-toto statement is then parsed from
the exact payload bytes that were verified (never from a copy shown beside it). Every
check that still makes sense runs, so every failing code is reported.

Check names: ``attestation`` (ATTESTATION_MISSING / ATTESTATION_INVALID, or
TRANSPARENCY_UNAVAILABLE), ``attestation_subject`` (ATTESTATION_SUBJECT_MISMATCH),
``attestation_coherence`` (ATTESTATION_MISMATCH), ``attestation_validity``
(ATTESTATION_EXPIRED, or ATTESTATION_INVALID when a window is required and absent).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from trustload.decision import CheckResult, ReasonCode
from trustload.errors import TrustloadError
from trustload.facts import Expectations, TrustAnchors
from trustload.formats.dsse import IN_TOTO_PAYLOAD_TYPE
from trustload.formats.intoto import Statement, parse_statement, subject_matches
from trustload.formats.slsa import ProvenanceFacts, extract_facts, git_matches, value_matches

CHECK = "attestation"
SUBJECT = "attestation_subject"
COHERENCE = "attestation_coherence"
VALIDITY = "attestation_validity"


@dataclass(frozen=True)
class AttestationFacts:
    predicate_type: str
    subjects: tuple[tuple[str, str], ...]  # (name, "alg:<hex>")
    git_sha: str | None
    container_digest: str | None
    dataset_snapshot: str | None
    not_before: datetime | None
    not_after: datetime | None
    signer: str | None


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def verify_statement(
    envelope: bytes, anchors: TrustAnchors, *, now: datetime
) -> tuple[Statement, ProvenanceFacts, str]:
    """Verify the envelope and parse its statement; raise TrustloadError on failure.

    A log entry the envelope carries is verified whenever logs are configured, but none
    is required here: ``require_key_tlog`` speaks of the model's signature. A cosign
    ``.att`` layer's Rekor SET is checked by :mod:`trustload.crypto.cosign` before this.
    """
    from dataclasses import replace

    from trustload.crypto.verify import verify_bundle
    from trustload.errors import AttestationError

    try:
        verified = verify_bundle(envelope, replace(anchors, require_key_tlog=False), now=now)
    except TrustloadError as exc:
        code = (
            ReasonCode.TRANSPARENCY_UNAVAILABLE
            if exc.code == ReasonCode.TRANSPARENCY_UNAVAILABLE
            else ReasonCode.ATTESTATION_INVALID
        )
        raise AttestationError(exc.message, code) from None
    if verified.envelope is None:
        raise AttestationError("attestation is not a DSSE envelope")
    if verified.envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise AttestationError(f"wrong payloadType {verified.envelope.payload_type!r:.80}")
    statement = parse_statement(verified.envelope.payload, code=ReasonCode.ATTESTATION_INVALID)
    facts = extract_facts(
        statement.predicate_type, statement.predicate, code=ReasonCode.ATTESTATION_INVALID
    )
    return statement, facts, verified.signer


def check_attestation(
    envelope: bytes | None,
    anchors: TrustAnchors,
    *,
    artifact_digest: str,
    expect: Expectations,
    now: datetime,
    clock_skew: timedelta,
    require_window: bool = False,
) -> tuple[list[CheckResult], AttestationFacts | None]:
    """Every attestation check; ``require_window`` (``[gate] require_attestation_window``)
    makes an attestation without ``notAfter`` ATTESTATION_INVALID: without an end, a
    signed provenance statement stays valid forever."""
    start = time.perf_counter()
    if envelope is None or len(envelope.strip()) == 0:
        return [CheckResult.failed(CHECK, ReasonCode.ATTESTATION_MISSING, "no attestation")], None
    try:
        statement, prov, signer = verify_statement(envelope, anchors.for_attestations(), now=now)
    except TrustloadError as exc:
        code = (
            exc.code
            if exc.code in (ReasonCode.ATTESTATION_INVALID, ReasonCode.TRANSPARENCY_UNAVAILABLE)
            else ReasonCode.ATTESTATION_INVALID
        )
        return [CheckResult.failed(CHECK, code, exc.message[:500], _ms(start))], None
    except Exception as exc:
        return [
            CheckResult.failed(
                CHECK,
                ReasonCode.ATTESTATION_INVALID,
                f"{type(exc).__name__}: {exc}"[:500],
                _ms(start),
            )
        ], None
    facts = AttestationFacts(
        predicate_type=statement.predicate_type,
        subjects=tuple(
            (s.name, f"{alg}:{val}") for s in statement.subjects for alg, val in s.digest
        ),
        git_sha=prov.git_sha,
        container_digest=prov.container_digest,
        dataset_snapshot=prov.dataset_snapshot,
        not_before=prov.not_before,
        not_after=prov.not_after,
        signer=signer,
    )
    results = [
        CheckResult.passed(CHECK, f"{statement.predicate_type} signed by {signer}", _ms(start))
    ]

    t = time.perf_counter()
    if subject_matches(statement, artifact_digest):
        results.append(CheckResult.passed(SUBJECT, f"subject matches {artifact_digest}", _ms(t)))
    else:
        names = [f"{n}={d}" for n, d in facts.subjects][:4]
        results.append(
            CheckResult.failed(
                SUBJECT,
                ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
                f"no subject carries {artifact_digest}; subjects: {names}"[:500],
                _ms(t),
            )
        )

    t = time.perf_counter()
    problems: list[str] = []
    if expect.git_sha is not None and not git_matches(expect.git_sha, prov.git_candidates):
        problems.append(f"git_sha {prov.git_sha!r} != expected {expect.git_sha!r}")
    if expect.container_digest is not None and not value_matches(
        expect.container_digest, prov.container_candidates
    ):
        problems.append(
            f"container_digest {prov.container_digest!r} != expected {expect.container_digest!r}"
        )
    if expect.dataset_snapshot is not None and not value_matches(
        expect.dataset_snapshot, prov.dataset_candidates
    ):
        problems.append(
            f"dataset_snapshot {prov.dataset_snapshot!r} != expected {expect.dataset_snapshot!r}"
        )
    if problems:
        results.append(
            CheckResult.failed(
                COHERENCE, ReasonCode.ATTESTATION_MISMATCH, "; ".join(problems)[:500], _ms(t)
            )
        )
    else:
        results.append(
            CheckResult.passed(
                COHERENCE, "git_sha, container_digest, dataset_snapshot coherent", _ms(t)
            )
        )

    t = time.perf_counter()
    if require_window and prov.not_after is None:
        results.append(
            CheckResult.failed(
                VALIDITY,
                ReasonCode.ATTESTATION_INVALID,
                "attestation has no notAfter, and a validity window is required here "
                "(require_attestation_window)",
                _ms(t),
            )
        )
    elif prov.not_before is not None and now < prov.not_before - clock_skew:
        results.append(
            CheckResult.failed(
                VALIDITY,
                ReasonCode.ATTESTATION_EXPIRED,
                f"not valid before {prov.not_before.isoformat()}",
                _ms(t),
            )
        )
    elif prov.not_after is not None and now > prov.not_after + clock_skew:
        results.append(
            CheckResult.failed(
                VALIDITY,
                ReasonCode.ATTESTATION_EXPIRED,
                f"expired at {prov.not_after.isoformat()}",
                _ms(t),
            )
        )
    else:
        results.append(CheckResult.passed(VALIDITY, "within notBefore/notAfter", _ms(t)))
    return results, facts
