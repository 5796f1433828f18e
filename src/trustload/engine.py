"""The decision engine: facts in, :class:`~trustload.decision.Decision` out (R1, R2, R4).

:func:`decide` runs every built-in check that still makes sense, lists every failing
code, then evaluates the Rego policy over the R4 input document. The final decision
is permit only when every built-in check passes **and** the policy permits: a policy
can add denials (``POLICY_DENY`` with its own message) but can never turn a failed
check into a permit, because the decision is the conjunction of all check results.

:func:`evaluate` is the one decision: start-up, rollback, ``verify``, ``verify-files``
and the re-decision on refresh (``GateFacts.verified`` set: the digest and signature
verified at load are reused, the bytes are not hashed again) all run it. The record
checks come from the one table in :mod:`trustload.rules`.

Checks that need a Registry record (stage, revocation, digest pin, policy digest,
revalidation, tenancy, anti-downgrade) are *skipped*, not failed, when there is no
record (``verify-files``); the signature check always runs, and the attestation
checks run whenever a record is present or an attestation was given.

:func:`verify_files` is the typed Python API behind ``trustload verify-files``.
Heavy modules (regopy, sigstore, model_signing) are imported only when used.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from trustload.checks.digest import check_digest
from trustload.checks.stage import default_allowed_stages
from trustload.decision import (
    CheckResult,
    Decision,
    Event,
    ReasonCode,
    checked,
    timed,
    utc_now,
)
from trustload.digests import FileEntry, ModelLayout, format_digest, manifest_digest
from trustload.errors import UsageError
from trustload.facts import Expectations, Requester, TrustAnchors, TrustedState, VersionRecord
from trustload.rules import (
    GOVERNANCE_CHECKS,
    STANDING_CHECKS,
    RecordFacts,
    run_checks,
)

if TYPE_CHECKING:
    from trustload.oci.evidence import ImageEvidence
    from trustload.policy import AttestationView, PolicyBundle, PolicyEngine, PolicyVerdict

DEFAULT_CLOCK_SKEW = timedelta(seconds=60)
MAX_EVIDENCE_BYTES = 16 * 1024 * 1024
MAX_KEY_BYTES = 64 * 1024
POLICY_CHECK = "policy"

# A Rego denial naming one of these codes is explained by a failed built-in check
# whose code is in the same family (e.g. the policy says SIGNATURE_INVALID while the
# signature check said SIGNATURE_MISSING or TRANSPARENCY_UNAVAILABLE).
_FAMILIES: tuple[frozenset[ReasonCode], ...] = (
    frozenset(
        {
            ReasonCode.SIGNATURE_MISSING,
            ReasonCode.SIGNATURE_INVALID,
            ReasonCode.TRANSPARENCY_UNAVAILABLE,
        }
    ),
    frozenset(
        {
            ReasonCode.ATTESTATION_MISSING,
            ReasonCode.ATTESTATION_INVALID,
            ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
            ReasonCode.ATTESTATION_MISMATCH,
            ReasonCode.ATTESTATION_EXPIRED,
        }
    ),
)
_CODE_PREFIX = re.compile(r"\s*([A-Z][A-Z0-9_]*)\s*:")


@dataclass(frozen=True)
class GateFacts:
    """Everything :func:`decide` needs; adapters (gate, verify-files, serve) fill it."""

    requested: str
    environment: str
    now: datetime
    clock_skew: timedelta
    layout: ModelLayout  # the exact bytes to verify (cache paths or a local model)
    signature_bundle: bytes | ImageEvidence | None  # a bundle, or an OCI model's cosign evidence
    attestation: bytes | None
    anchors: TrustAnchors
    expect: Expectations
    record: VersionRecord | None = None  # None for verify-files (no Registry)
    runtime_policy_digest: str | None = None
    requester: Requester | None = None
    trusted_state: TrustedState | None = None  # anti-downgrade
    allowed_stages: tuple[str, ...] | None = None  # default from environment
    pre_checks: tuple[CheckResult, ...] = ()  # results an adapter already produced
    require_change_ticket: bool = False
    require_attestation: bool | None = None  # None: required iff a record is present
    verified: Verified | None = None  # a re-decision over bytes already verified in memory
    require_attestation_window: bool = False  # an attestation without notAfter is invalid


def _code_of(message: str) -> ReasonCode | None:
    match = _CODE_PREFIX.match(message)
    if match is None:
        return None
    try:
        return ReasonCode(match.group(1))
    except ValueError:
        return None


def _explained_by(code: ReasonCode | None, failed: Sequence[CheckResult]) -> ReasonCode | None:
    """The failing built-in code that explains a policy denial naming ``code``, if any."""
    if code is None or code is ReasonCode.POLICY_DENY:
        return None
    family = next((f for f in _FAMILIES if code in f), frozenset({code}))
    for check in failed:
        if check.code is not None and check.code in family:
            return check.code
    return None


def policy_result(
    verdict: PolicyVerdict, builtin: Sequence[CheckResult], digest: str
) -> CheckResult:
    """Turn the Rego verdict into the ``policy`` check (pure).

    * permit: a passing check (the decision still denies if any built-in failed);
    * every denial explained by a failed built-in check: a failing check carrying the
      explaining built-in code (so no new reason is invented);
    * any unexplained denial, an evaluation error, or ``permit`` false with no
      message while all built-ins pass: ``POLICY_DENY`` with the policy's messages.
    """
    if verdict.permit:
        return CheckResult.passed(POLICY_CHECK, f"permit ({digest})")
    failed = [c for c in builtin if not c.ok]
    if verdict.error is not None:
        return CheckResult.failed(POLICY_CHECK, ReasonCode.POLICY_DENY, verdict.error)
    unexplained = [m for m in verdict.denials if _explained_by(_code_of(m), failed) is None]
    if unexplained:
        return CheckResult.failed(POLICY_CHECK, ReasonCode.POLICY_DENY, "; ".join(unexplained))
    if verdict.denials:
        code = _explained_by(_code_of(verdict.denials[0]), failed)
        assert code is not None
        return CheckResult.failed(POLICY_CHECK, code, "; ".join(verdict.denials))
    if failed and failed[0].code is not None:
        return CheckResult.failed(POLICY_CHECK, failed[0].code, "policy did not permit")
    return CheckResult.failed(
        POLICY_CHECK, ReasonCode.POLICY_DENY, "policy did not permit (no deny message)"
    )


def digest_from_entries(layout: ModelLayout, files: Sequence[FileEntry] | None) -> str | None:
    """The artifact digest from per-file digests already measured, when they cover the
    layout exactly with whole-file SHA-256 values; None means "measure it"."""
    if layout.kind == "digest":
        return layout.digest
    if not files:
        return None
    if layout.oci_manifest is not None:
        # An OCI model's digest is its manifest's. Only the OCI signature check hands files
        # over for it (after hashing the manifest to it and matching every file to its
        # layer); the OCI source sets no ``known`` digests, so anything else is measured.
        return None if layout.known else layout.digest
    if sorted(f.path for f in files) != sorted(rel for rel, _ in layout.files):
        return None
    for f in files:
        if len(f.sha256) != 64 or any(c not in "0123456789abcdef" for c in f.sha256):
            return None
    if layout.kind == "file":
        return format_digest(files[0].sha256)
    return manifest_digest(files)


def _merge_expectations(expect: Expectations, record: VersionRecord | None) -> Expectations:
    """Fill expectations the runtime does not set from the Registry record (R2.6)."""
    if record is None:
        return expect
    return Expectations(
        git_sha=expect.git_sha if expect.git_sha is not None else record.git_sha,
        container_digest=(
            expect.container_digest
            if expect.container_digest is not None
            else record.container_digest
        ),
        dataset_snapshot=(
            expect.dataset_snapshot
            if expect.dataset_snapshot is not None
            else record.dataset_snapshot
        ),
    )


def check_coherence(expect: Expectations, record: VersionRecord) -> CheckResult:
    """R2.6: the runtime's own expectations agree with the Registry record (pure)."""
    pairs = (
        ("git_sha", expect.git_sha, record.git_sha),
        ("container_digest", expect.container_digest, record.container_digest),
        ("dataset_snapshot", expect.dataset_snapshot, record.dataset_snapshot),
    )
    for field, runtime, registry in pairs:
        if runtime is not None and runtime != registry:
            return CheckResult.failed(
                "coherence",
                ReasonCode.ATTESTATION_MISMATCH,
                f"runtime expects {field}={runtime}, Registry records {registry}",
            )
    return CheckResult.passed("coherence", "runtime and Registry agree")


def _attestation_view(facts: Any) -> AttestationView | None:
    """Adapt H1's ``AttestationFacts`` to what the policy input shows."""
    from trustload.policy import AttestationView

    if facts is None:
        return None
    subjects: list[str] = []
    for subject in getattr(facts, "subjects", ()) or ():
        digest = _subject_digest(subject)
        if digest is not None:
            subjects.append(digest)
    return AttestationView(
        subjects=tuple(subjects),
        predicate_type=_str_or_none(getattr(facts, "predicate_type", None)),
        git_sha=_str_or_none(getattr(facts, "git_sha", None)),
        container_digest=_str_or_none(getattr(facts, "container_digest", None)),
        dataset_snapshot=_str_or_none(getattr(facts, "dataset_snapshot", None)),
        not_before=_dt_or_none(getattr(facts, "not_before", None)),
        not_after=_dt_or_none(getattr(facts, "not_after", None)),
        signer=_str_or_none(getattr(facts, "signer", None)),
    )


def _subject_digest(subject: Any) -> str | None:
    """``sha256:<hex>`` of one subject (``(name, "alg:hex")`` from H1), else None."""
    if isinstance(subject, tuple | list) and len(subject) == 2:
        subject = subject[1]
    if isinstance(subject, str) and subject.startswith("sha256:"):
        return subject.lower()
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dt_or_none(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


CONCURRENT_MEASURE_BYTES = 256 * 1024 * 1024


class _Measure:
    """Whole-file SHA-256 of a single-file layout, computed on a background thread."""

    def __init__(self, layout: ModelLayout) -> None:
        import threading

        self._layout = layout
        self._digest: str | None = None
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name="trustload-measure", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from trustload.digests import measure_layout

        try:
            self._digest = measure_layout(self._layout).digest
        except Exception as exc:  # reported as a failed measurement, never a pass
            self._error = f"{type(exc).__name__}: {exc}"

    def result(self) -> tuple[str | None, str | None]:
        self._thread.join()
        return self._digest, self._error


def _start_measure(layout: ModelLayout) -> _Measure | None:
    """Start a concurrent measurement only for a large single file (see decide)."""
    if layout.kind != "file" or len(layout.files) != 1:
        return None
    try:
        size = os.stat(layout.files[0][1], follow_symlinks=False).st_size
    except OSError:
        return None
    return _Measure(layout) if size > CONCURRENT_MEASURE_BYTES else None


class PolicyLike(Protocol):
    """What :func:`decide` needs of a policy: its bundle digest and an evaluator."""

    @property
    def digest(self) -> str: ...

    def evaluate(self, input_doc: dict[str, Any]) -> PolicyVerdict: ...


class _PolicyCompiledAside:
    """A policy whose Rego compiles on a background thread while the model hashes.

    ``verify-files`` is a one-shot process: importing regopy and compiling the bundle
    would otherwise add to the hashing time. The digest is known up front (it comes
    from the bundle's bytes); :meth:`evaluate` waits for the compiled engine.
    """

    def __init__(self, directory: Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from trustload.policy import load_bundle

        bundle = load_bundle(directory)  # usage errors (bad bundle) surface here, at once
        self._digest = bundle.digest
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rego-compile")
        self._future = pool.submit(_policy_engine_for, bundle)
        pool.shutdown(wait=False)

    @property
    def digest(self) -> str:
        return self._digest

    def engine(self) -> PolicyEngine:
        """The compiled engine; re-raises a compile error (a usage error)."""
        return self._future.result()

    def evaluate(self, input_doc: dict[str, Any]) -> PolicyVerdict:
        return self.engine().evaluate(input_doc)


def record_facts(
    facts: GateFacts, policy: PolicyLike | None, error: str | None = None
) -> RecordFacts:
    """The record-check view of the engine's facts (``facts.record`` must be set)."""
    assert facts.record is not None
    return RecordFacts(
        record=facts.record,
        environment=facts.environment,
        allowed_stages=facts.allowed_stages,
        now=facts.now,
        policy_digest=None if policy is None else policy.digest,
        claimed_policy_digest=facts.runtime_policy_digest,
        policy_error=error,
        requester=facts.requester,
        trusted_state=facts.trusted_state,
        require_change_ticket=facts.require_change_ticket,
    )


# ------------------------------------------------------------------ the decision


@dataclass(frozen=True)
class Verified:
    """What a permitting decision measured, kept with the bytes held in memory so that a
    re-decision (refresh, post-warm-up) re-runs every rule without re-hashing."""

    artifact_digest: str | None
    signer: str | None
    signature_detail: str


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    verified: Verified | None  # None unless the signature passed and a digest is known


@dataclass
class _Measured:
    checks: list[CheckResult]  # [measure failure], digest pin, signature, in that order
    digest: str | None
    signer: str | None
    signature_ok: bool


def _wants_attestation(facts: GateFacts) -> bool:
    required = (
        facts.require_attestation
        if facts.require_attestation is not None
        else facts.record is not None or facts.attestation is not None
    )
    return required or facts.attestation is not None


def _carried_signature(facts: GateFacts, held: Verified) -> _Measured:
    """Re-decision: the bytes were hashed and their signature verified at load and are
    held in memory unchanged, so the measured digest is re-compared, not re-computed."""
    sig = CheckResult.passed("signature", f"{held.signature_detail} (verified at load)")
    checks = []
    if facts.record is not None:
        pinned = facts.record.artifact_digest
        checks.append(
            timed(
                "digest",
                lambda: check_digest(held.artifact_digest, pinned),
                ReasonCode.DIGEST_MISMATCH,
            )
        )
    return _Measured([*checks, sig], held.artifact_digest, held.signer, True)


def _measure_and_sign(facts: GateFacts, need_digest: bool) -> _Measured:
    """Signature (always) and the artifact digest (pin and attestation subject).

    Files the cache has just downloaded carry the digests computed in that one pass
    (``layout.known``), which stand in for measuring them. Otherwise the signature check
    hashes the files; its digests are reused when they cover the layout. A file signed in
    shard mode (another signer; trustload signs in files mode) yields no whole-file
    SHA-256, so it is measured concurrently instead of afterwards.
    """
    from trustload.checks.oci_model import check_signature
    from trustload.streamhash import known_entries

    if facts.verified is not None:
        return _carried_signature(facts, facts.verified)

    record = facts.record
    # Files the cache hashed while writing them come with their digests (one pass).
    known = known_entries(facts.layout)
    early = _start_measure(facts.layout) if need_digest and known is None else None
    outcome: list[Any] = []

    def run_signature() -> CheckResult:
        result = check_signature(facts.layout, facts.signature_bundle, facts.anchors, now=facts.now)
        outcome.append(result)
        return result.result

    sig_check = timed("signature", run_signature, ReasonCode.SIGNATURE_INVALID)
    signer: str | None = outcome[0].signer if outcome else None
    checks: list[CheckResult] = []
    measured: str | None = None
    if early is not None:
        measured, error = early.result()
        if error is not None and record is None:
            checks.append(CheckResult.failed("measure", ReasonCode.DIGEST_MISMATCH, error))
    else:
        signed = outcome[0].files if sig_check.ok else None
        measured = digest_from_entries(facts.layout, known or signed)
    if measured is None and need_digest and early is None:
        from trustload.digests import measure_layout

        box: list[str] = []

        def run_measure() -> CheckResult:
            box.append(measure_layout(facts.layout).digest)
            return CheckResult.passed("measure", box[0])

        probe = timed("measure", run_measure, ReasonCode.DIGEST_MISMATCH)
        measured = box[0] if box else None
        if not probe.ok and record is None:
            checks.append(probe)
    if record is not None:
        pinned = record.artifact_digest
        checks.append(
            timed("digest", lambda: check_digest(measured, pinned), ReasonCode.DIGEST_MISMATCH)
        )
    return _Measured([*checks, sig_check], measured, signer, sig_check.ok)


def _attestation_step(
    facts: GateFacts, measured: str | None
) -> tuple[list[CheckResult], list[CheckResult], Any]:
    """R2.6 / R2.8: coherence with the record, then the attestation (from bytes in memory:
    its DSSE envelope is small, so validity windows are re-judged at every decision)."""
    from trustload.checks.attestation import check_attestation

    record = facts.record
    coherence = [] if record is None else [check_coherence(facts.expect, record)]
    box: list[Any] = []

    def run() -> list[CheckResult]:
        results, att_facts = check_attestation(
            facts.attestation,
            facts.anchors,
            artifact_digest=measured or "",
            expect=_merge_expectations(facts.expect, record),
            now=facts.now,
            clock_skew=facts.clock_skew,
            require_window=facts.require_attestation_window,
        )
        box.append(att_facts)
        return results

    verdict = checked("attestation", ReasonCode.ATTESTATION_INVALID, run)
    return coherence, verdict, (box[0] if box else None)


def _policy_step(
    facts: GateFacts,
    policy: PolicyLike,
    checks: list[CheckResult],
    measured: _Measured,
    attestation: tuple[bool, list[CheckResult], AttestationView | None],
) -> CheckResult:
    """The Rego policy, over an input where every field is present (R4)."""
    from trustload.policy.input import MODE_FILES, MODE_GATE, PolicyInputs, build_input

    want, att_checks, view = attestation
    record = facts.record
    inputs = PolicyInputs(
        mode=MODE_GATE if record is not None else MODE_FILES,
        now=facts.now,
        environment=facts.environment,
        allowed_stages=_policy_stages(facts),
        runtime_policy_digest=policy.digest,
        artifact_digest=measured.digest,
        artifact_kind=facts.layout.kind,
        signature_present=_signature_present(facts.signature_bundle),
        signature_valid=measured.signature_ok,
        signer=measured.signer,
        attestation_required=want,
        attestation_present=facts.attestation is not None,
        attestation_valid=bool(att_checks) and all(c.ok for c in att_checks) and view is not None,
        attestation=view,
        record=record,
        requester=facts.requester,
        checks=tuple(checks),
    )
    builtin = list(checks)
    return timed(
        POLICY_CHECK,
        lambda: policy_result(policy.evaluate(build_input(inputs)), builtin, policy.digest),
        ReasonCode.POLICY_DENY,
    )


def _signature_present(evidence: bytes | ImageEvidence | None) -> bool:
    """A bundle was delivered, or an OCI artifact has at least one cosign signature."""
    if evidence is None or isinstance(evidence, bytes):
        return evidence is not None
    return bool(evidence.signatures or evidence.referrers)


def _policy_stages(facts: GateFacts) -> tuple[str, ...]:
    """The stages shown to the policy; an unknown environment (``local`` for
    verify-files, where no stage applies) shows none rather than a default."""
    if facts.allowed_stages is not None:
        return tuple(facts.allowed_stages)
    try:
        return default_allowed_stages(facts.environment)
    except ValueError:
        return ()


def decide(facts: GateFacts, policy: PolicyLike) -> Decision:
    """Run every applicable check and the Rego policy; permit only if all pass."""
    return evaluate(facts, policy).decision


def evaluate(facts: GateFacts, policy: PolicyLike) -> Outcome:
    """The one decision (start-up, refresh, rollback, verify, verify-files, fetch).

    Steps: record standing; signature and digest (or, on a re-decision, the digest
    measured at load); attestation; governance (policy digest, revalidation, tenancy,
    anti-downgrade); the Rego policy. The decision lists every failing code.
    """
    started = time.perf_counter()
    record = facts.record
    rfacts = None if record is None else record_facts(facts, policy)
    checks: list[CheckResult] = list(facts.pre_checks)
    if rfacts is not None:
        checks += run_checks(STANDING_CHECKS, rfacts)
    want = _wants_attestation(facts)
    measured = _measure_and_sign(facts, need_digest=record is not None or want)
    checks += measured.checks
    att_checks: list[CheckResult] = []
    view: AttestationView | None = None
    if want:
        coherence, att_checks, att_facts = _attestation_step(facts, measured.digest)
        checks += coherence + att_checks
        view = _attestation_view(att_facts)
    if rfacts is not None:
        checks += run_checks(GOVERNANCE_CHECKS, rfacts)
    checks.append(_policy_step(facts, policy, checks, measured, (want, att_checks, view)))
    decision = assemble(
        checks,
        requested=facts.requested,
        environment=facts.environment,
        record=record,
        requester=facts.requester,
        policy_digest=policy.digest,
        now=facts.now,
        measured=measured.digest,
        view=view,
        fallback_model=facts.layout.name,
    )
    decision.latency_ms = (time.perf_counter() - started) * 1000.0
    verified = None
    if measured.signature_ok and measured.digest is not None:
        sig = next(c for c in measured.checks if c.name == "signature")
        verified = Verified(measured.digest, measured.signer, sig.detail)
    return Outcome(decision, verified)


def assemble(
    checks: list[CheckResult],
    *,
    requested: str,
    environment: str,
    record: VersionRecord | None,
    requester: Requester | None,
    policy_digest: str | None,
    now: datetime,
    measured: str | None = None,
    view: AttestationView | None = None,
    fallback_model: str | None = None,
) -> Decision:
    """The decision record (INTERFACE.md) around ``checks``: identity from the Registry
    record when there is one, else from the attestation, the requester or the model."""
    card = record.card if record is not None else None
    permitted = bool(checks) and all(c.ok for c in checks)
    identity: tuple[str | None, str | None, str | None]
    if record is not None:
        identity = (record.git_sha, record.container_digest, record.dataset_snapshot)
    elif view is not None:
        identity = (view.git_sha, view.container_digest, view.dataset_snapshot)
    else:
        identity = (None, None, None)
    return Decision(
        event=Event.STARTUP_PERMIT if permitted else Event.STARTUP_DENY,
        checks=checks,
        requested=requested,
        model=record.name if record is not None else fallback_model,
        version=record.version if record is not None else None,
        artifact_digest=measured
        if measured is not None
        else (record.artifact_digest if record is not None else None),
        policy_digest=policy_digest,
        git_sha=identity[0],
        container_digest=identity[1],
        dataset_snapshot=identity[2],
        tenant=card.tenant_id if card else (requester.tenant_id if requester else None),
        domain=card.domain if card else (requester.domain if requester else None),
        environment=environment,
        caller=requester.caller if requester is not None else None,
        at=now,
    )


# ---------------------------------------------------------------- verify-files


def _read_evidence(path: Path | None) -> bytes | None:
    """Evidence bytes, bounded; a missing file is missing evidence (a denial, not usage)."""
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        import stat as _stat

        if not _stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"not a regular file: {path}")
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_EVIDENCE_BYTES:
            chunk = os.read(fd, 1024 * 1024)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        # Oversized evidence is handed on truncated: the parser rejects it as malformed.
        return b"".join(chunks)[: MAX_EVIDENCE_BYTES + 1]
    finally:
        os.close(fd)


def _read_key(path: Path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read public key {path}: {exc.strerror}") from exc
    if len(data) > MAX_KEY_BYTES:
        raise UsageError(f"public key {path} is larger than {MAX_KEY_BYTES} bytes")
    return data


_ENGINE_CACHE: dict[str, PolicyEngine] = {}


def _policy_engine(directory: Path) -> PolicyEngine:
    """Compile a bundle once per process and content (the digest is the cache key)."""
    from trustload.policy import load_bundle

    return _policy_engine_for(load_bundle(directory))


def _policy_engine_for(bundle: PolicyBundle) -> PolicyEngine:
    from trustload.policy import PolicyEngine

    engine = _ENGINE_CACHE.get(bundle.digest)
    if engine is None:
        engine = PolicyEngine.from_bundle(bundle)
        if len(_ENGINE_CACHE) >= 8:
            _ENGINE_CACHE.clear()
        _ENGINE_CACHE[bundle.digest] = engine
    return engine


def _artifact_layout(path: str | os.PathLike[str]) -> ModelLayout:
    """A ``sha256:<hex>`` argument is a digest, anything else a model path."""
    from trustload.digests import parse_sha256_reference

    text = os.fspath(path)
    if isinstance(text, str) and parse_sha256_reference(text) is not None:
        return ModelLayout.for_digest(text)
    return ModelLayout.from_path(path)


def verify_files(
    path: str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str],
    public_keys: Sequence[str | os.PathLike[str]] = (),
    certificate_identity: str | None = None,
    certificate_oidc_issuer: str | None = None,
    trusted_root: str | os.PathLike[str] | None = None,
    attestation: str | os.PathLike[str] | None = None,
    git_sha: str | None = None,
    container_digest: str | None = None,
    dataset_snapshot: str | None = None,
    now: datetime | None = None,
    policy_dir: str | os.PathLike[str] | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    rekor_keys: Sequence[str | os.PathLike[str]] = (),
    ca_roots: Sequence[str | os.PathLike[str]] = (),
    ca_intermediates: Sequence[str | os.PathLike[str]] = (),
) -> Decision:
    """Verify a local model file or directory, or a bare ``sha256:<hex>`` digest,
    against its signature (and attestation).

    The same engine and decision as the start-up gate, without a Registry: the
    Registry-dependent checks are skipped. Raises :class:`UsageError` for a bad
    invocation (no trust anchor, half a keyless identity, unreadable key, missing
    model, bad policy bundle); missing or malformed *evidence* is a denial.

    With keys, ``trusted_root`` (its tlogs) or ``rekor_keys`` make the bundle's
    transparency-log entry required and verified against those logs; keys alone
    require none. A ``sha256:<64 hex>`` path is always a digest (write ``./sha256:...``
    for a file of that name): nothing is read, the signature must bind the digest.
    """
    from trustload.policy import default_policy_dir

    if not public_keys and certificate_identity is None:
        raise UsageError("give --key, or --certificate-identity with --certificate-oidc-issuer")
    if ca_roots and certificate_identity is None:
        raise UsageError("--ca-roots needs a pinned --certificate-identity")
    if ca_intermediates and not ca_roots:
        raise UsageError("--ca-intermediates needs --ca-roots")
    if not ca_roots and (certificate_identity is None) != (certificate_oidc_issuer is None):
        raise UsageError("--certificate-identity and --certificate-oidc-issuer go together")
    if public_keys and certificate_identity is not None:
        raise UsageError("give either --key or a certificate identity, not both")
    expected = (git_sha, container_digest, dataset_snapshot)
    if attestation is not None and any(v is None for v in expected):
        raise UsageError("--attestation needs --git-sha, --container-digest and --dataset-snapshot")
    if attestation is None and any(v is not None for v in expected):
        raise UsageError("--git-sha/--container-digest/--dataset-snapshot need --attestation")
    if trusted_root is not None and not Path(trusted_root).is_file():
        raise UsageError(f"no such trusted root file: {trusted_root}")

    rekor_pems = tuple(_read_key(Path(k)) for k in rekor_keys)
    anchors = TrustAnchors(
        public_keys=tuple(_read_key(Path(k)) for k in public_keys),
        certificate_identity=certificate_identity,
        certificate_oidc_issuer=certificate_oidc_issuer,
        trusted_root=None if trusted_root is None else Path(trusted_root),
        ca_certs=tuple(_read_key(Path(c)) for c in ca_roots),
        ca_intermediates=tuple(_read_key(Path(c)) for c in ca_intermediates),
        rekor_keys=rekor_pems,
        require_key_tlog=bool(public_keys) and (trusted_root is not None or bool(rekor_pems)),
    )
    try:
        layout = _artifact_layout(path)
    except UsageError as exc:
        if not os.path.lexists(path):
            raise  # a missing model is a usage error
        # A symlink or special file in (or as) the model is hostile evidence: the
        # signed statement cannot cover it, so it is a denial with a code, not exit 2.
        check = CheckResult.failed("model_files", ReasonCode.SIGNATURE_INVALID, str(exc))
        return Decision(
            event=Event.STARTUP_DENY, checks=[check], requested=str(path), environment="local"
        )
    policy = _PolicyCompiledAside(Path(policy_dir) if policy_dir else default_policy_dir())
    facts = GateFacts(
        requested=str(path),
        environment="local",
        now=now if now is not None else utc_now(),
        clock_skew=clock_skew,
        layout=layout,
        signature_bundle=_read_evidence(Path(signature)),
        attestation=_read_evidence(None if attestation is None else Path(attestation)),
        anchors=anchors,
        expect=Expectations(git_sha, container_digest, dataset_snapshot),
        require_attestation=attestation is not None,
    )
    started = time.perf_counter()
    decision = decide(facts, policy)
    policy.engine()  # a bundle that does not compile is a usage error, never a verdict
    decision.latency_ms = (time.perf_counter() - started) * 1000.0
    return decision
