"""The R3 start-up / refresh flow: gather facts through adapters, decide, record.

1. Token and mTLS channel (R2.1): the requester comes from the token's claims and the
   client certificate's identity.
2. Resolve the alias or version to a record (R2.2), pinned by digest.
3. Deny at once when revoked, quarantined or in a stage the environment does not allow
   (R2.3, R2.4): a full decision listing every failing code that can be known without
   downloading (stage, revocation, policy digest, revalidation, tenancy, downgrade).
4. Download **by digest** into the content-addressed cache through the record's
   *source* (:mod:`trustload.sources`): the Registry's blob store (file blob, or the
   manifest then every file blob; signature bundle; attestation), or the OCI registry
   an ``artifact_uri`` names (manifest, every layer, cosign signature and attestation).
   Cached blobs are re-verified; the engine never learns which source served them.
5. Run the engine (:func:`trustload.engine.decide`) over cache paths, with the
   Registry record as the expectations and the token as the requester.
6. Permit: optional warm-up hook, re-check of the record (a revocation during warm-up
   denies, R9 chaos), then the anti-downgrade state moves forward.

Channel failures become decisions (AUTH_FAILED, TLS_POLICY, REGISTRY_NOT_ALLOWED,
REGISTRY_UNAVAILABLE, NOT_FOUND), never tracebacks. Every decision is audited once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from trustload.decision import CheckResult, Decision, Event, ReasonCode, failure, utc_now
from trustload.digests import FileEntry, ModelLayout, digests_equal
from trustload.errors import TrustloadError, UsageError
from trustload.facts import (
    Expectations,
    ModelRef,
    Requester,
    TrustAnchors,
    TrustedState,
    VersionRecord,
)
from trustload.sources.registry import parse_manifest  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from trustload.cache import BlobCache
    from trustload.client.api import RegistryClient
    from trustload.config import ClientFileConfig, GateConfig
    from trustload.engine import GateFacts, Verified
    from trustload.policy import PolicyEngine
    from trustload.sources.base import Fetched, ModelSource

MAX_EVIDENCE_BYTES = 16 * 1024 * 1024
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_KEY_BYTES = 64 * 1024

_ENGINES: dict[tuple[str, str], PolicyEngine] = {}
_ENGINES_LOCK = threading.Lock()


@dataclass(frozen=True)
class GateResult:
    """What the gate decided and, on permit, exactly which verified bytes to load."""

    decision: Decision
    record: VersionRecord | None
    layout: ModelLayout | None  # verified cache paths (None on deny)
    files: tuple[FileEntry, ...] | None  # verified per-file digests, for the loader
    held: Held | None = None  # on permit: what a re-decision reuses (no re-download)


@dataclass(frozen=True)
class Held:
    """The facts and measurements of the decision that admitted a version, kept beside
    the loaded bytes so refresh can run the whole decision again without re-hashing."""

    facts: GateFacts
    verified: Verified


# ----------------------------------------------------------------- pure helpers


def check_freshness(
    record: VersionRecord, now: datetime, max_age: float, skew: float
) -> CheckResult:
    """TUF indefinite freeze: a replayed old answer (hiding a later revocation or alias
    move) is refused. The Registry stamps every record with ``served_at``; an answer
    without it, older than ``max_age`` (``[gate].max_staleness``) or dated in the future
    beyond the clock skew is not a fresh Registry answer -> REGISTRY_UNAVAILABLE."""
    if record.served_at is None:
        return CheckResult.failed(
            "freshness", ReasonCode.REGISTRY_UNAVAILABLE, "the Registry answer has no served_at"
        )
    age = (now - record.served_at).total_seconds()
    if age > max_age + skew:
        return CheckResult.failed(
            "freshness",
            ReasonCode.REGISTRY_UNAVAILABLE,
            f"stale Registry answer ({age:.0f}s old, limit {max_age:.0f}s): replayed?",
        )
    if age < -skew:
        return CheckResult.failed(
            "freshness",
            ReasonCode.REGISTRY_UNAVAILABLE,
            f"Registry answer dated {-age:.0f}s in the future",
        )
    return CheckResult.passed("freshness", f"answer {max(age, 0.0):.1f}s old")


def blocked_at_once(checks: list[CheckResult]) -> bool:
    """R3.3: revoked, quarantined or stage not allowed -> no download at all."""
    stop = {ReasonCode.REVOKED, ReasonCode.QUARANTINED, ReasonCode.STAGE_NOT_ALLOWED}
    return any(c.code in stop for c in checks)


def next_state(
    record: VersionRecord, environment: str, state: TrustedState | None
) -> TrustedState | None:
    """The anti-downgrade state after permitting ``record``; None means unchanged."""
    if (
        state is not None
        and state.version == record.version
        and digests_equal(state.artifact_digest, record.artifact_digest)
    ) and (
        record.alias is None
        or (
            record.alias == state.alias
            and (record.alias_revision or 0) <= (state.alias_revision or 0)
        )
    ):
        return None
    return TrustedState(
        model=record.name,
        environment=environment,
        version=record.version,
        alias=record.alias,
        alias_revision=record.alias_revision,
        artifact_digest=record.artifact_digest,
    )


# --------------------------------------------------------------------- adapters


def _engine_for(policy_dir: Path) -> PolicyEngine:
    """Compile the runtime policy bundle once per (directory, digest)."""
    from trustload.policy import PolicyEngine, load_bundle

    bundle = load_bundle(policy_dir)
    key = (str(policy_dir.resolve()), bundle.digest)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
    if engine is None:
        engine = PolicyEngine.from_bundle(bundle)
        with _ENGINES_LOCK:
            _ENGINES[key] = engine
    return engine


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if len(data) > limit:
        raise UsageError(f"{what} {path} is larger than {limit} bytes")
    return data


def trust_anchors(config: ClientFileConfig) -> TrustAnchors:
    from trustload.crypto.verify import check_key_roles

    gate = config.gate
    if gate.ca_certs and not gate.certificate_identity:
        raise UsageError("[gate] ca_certs needs certificate_identity (the pinned leaf identity)")
    anchors = TrustAnchors(
        public_keys=tuple(
            _read_bounded(k, MAX_KEY_BYTES, "trusted key") for k in gate.trusted_keys
        ),
        certificate_identity=gate.certificate_identity,
        certificate_oidc_issuer=gate.certificate_oidc_issuer,
        trusted_root=gate.trusted_root,
        ca_certs=tuple(_read_bounded(c, MAX_KEY_BYTES, "CA certificate") for c in gate.ca_certs),
        ca_intermediates=tuple(
            _read_bounded(c, MAX_KEY_BYTES, "CA intermediate") for c in gate.ca_intermediates
        ),
        rekor_keys=tuple(_read_bounded(k, MAX_KEY_BYTES, "Rekor key") for k in gate.rekor_keys),
        require_key_tlog=bool(gate.rekor_keys),
        attestation_keys=tuple(
            _read_bounded(k, MAX_KEY_BYTES, "attestation key") for k in gate.attestation_keys
        ),
    )
    check_key_roles(anchors)
    return anchors


def fetch_model(
    client: RegistryClient,
    cache: BlobCache,
    record: VersionRecord,
    max_bytes: int,
    *,
    quick: bool = False,
) -> Fetched:
    """R3.4 for a record served by the Registry itself (kept for callers and tests;
    the gate goes through :func:`trustload.sources.source_for`)."""
    from trustload.sources.registry import RegistrySource

    return RegistrySource(client).fetch(cache, record, max_bytes, quick=quick)


def run_gate(
    config: ClientFileConfig,
    ref: ModelRef | str,
    *,
    now: datetime | None = None,
    client: RegistryClient | None = None,
    record_audit: bool = True,
    update_state: bool = True,
    event: Event | None = None,
    warmup_hook: Callable[[GateResult], None] | None = None,
) -> GateResult:
    """Run the whole start-up gate for ``ref`` and return the decision and verified layout.

    ``event`` replaces the permit event (e.g. ``rollback_execute`` when the serving
    runtime re-admits its previous version); denials are always ``startup_deny``.
    ``warmup_hook`` runs on a provisional permit; the record is then fetched again
    and a revocation/quarantine/stage change meanwhile turns the permit into a deny.
    Raises only :class:`UsageError` (bad configuration or reference).
    """
    started = time.perf_counter()
    moment = now if now is not None else utc_now()
    mref = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
    gate = config.gate
    own_client = client is None
    if client is None:
        from trustload.client.api import RegistryClient

        client = RegistryClient(config.registry)
    try:
        result = _run(config, mref, moment, client, update_state, warmup_hook)
    finally:
        if own_client:
            client.close()
    decision = result.decision
    decision.latency_ms = (time.perf_counter() - started) * 1000.0
    if decision.permitted and event is not None:
        decision.event = event
    if record_audit:
        from trustload.audit import AuditLog

        AuditLog(gate.audit_log).append(decision.to_json())
    return result


@dataclass
class _Flow:
    """One gate run: its inputs and the checks gathered before the engine runs."""

    config: ClientFileConfig
    mref: ModelRef
    now: datetime
    client: RegistryClient
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def requested(self) -> str:
        return str(self.mref)

    def deny(
        self,
        extra: list[CheckResult],
        record: VersionRecord | None,
        requester: Requester | None,
        policy_digest: str | None,
    ) -> GateResult:
        """A denial decided before the engine ran (channel failure, early stop)."""
        from trustload.engine import assemble

        decision = assemble(
            self.checks + extra,
            requested=self.requested,
            environment=self.config.gate.environment,
            record=record,
            requester=requester,
            policy_digest=policy_digest,
            now=self.now,
            fallback_model=self.requested.partition("@")[0] or None,
        )
        return GateResult(decision, record, None, None)


def _stages(gate: GateConfig) -> tuple[str, ...] | None:
    return None if gate.allowed_stages is None else tuple(gate.allowed_stages)


def _load_policy(policy_dir: Path) -> tuple[PolicyEngine | None, str | None]:
    """The runtime policy bundle as it is on disk now (compiled once per digest)."""
    try:
        return _engine_for(policy_dir), None
    except (UsageError, TrustloadError, OSError) as exc:
        return None, str(exc)


def _run(
    config: ClientFileConfig,
    mref: ModelRef,
    now: datetime,
    client: RegistryClient,
    update_state: bool,
    warmup_hook: Callable[[GateResult], None] | None,
) -> GateResult:
    """R3 in order: channel and record, local facts, early denial, download and decide,
    warm-up and re-decision, then the anti-downgrade state moves forward."""
    from trustload.rules import RECORD_CHECKS, RecordFacts, run_checks
    from trustload.state import save_state

    gate = config.gate
    flow = _Flow(config, mref, now, client)
    resolved = _resolve(flow)
    if isinstance(resolved, GateResult):
        return resolved
    requester, record = resolved
    engine, policy_error = _load_policy(gate.policy_dir)
    trusted = _trusted_state(flow, record)
    digest_now = engine.digest if engine else None
    # R3.3: deny at once, with every code knowable without downloading.
    early = run_checks(
        RECORD_CHECKS,
        RecordFacts(
            record=record,
            environment=gate.environment,
            allowed_stages=_stages(gate),
            now=now,
            policy_digest=digest_now,
            policy_error=policy_error,
            requester=requester,
            trusted_state=trusted,
            require_change_ticket=gate.require_change_ticket,
        ),
    )
    if blocked_at_once(early) or engine is None:
        return flow.deny(early, record, requester, digest_now)
    image_digest, denied = _image_step(flow, early, record, requester, engine.digest)
    if denied is not None:
        return denied
    result = _download_and_decide(flow, record, requester, trusted, engine, early, image_digest)
    if result.held is None:
        return result
    if warmup_hook is not None:
        result = _warm_up(flow, result, warmup_hook)
    if result.held is not None and update_state:
        new = next_state(record, gate.environment, trusted)
        if new is not None:
            save_state(gate.state_dir, new)
    return result


def _resolve(flow: _Flow) -> tuple[Requester, VersionRecord] | GateResult:
    """R3.1 / R3.2: who we are, and a fresh Registry answer about the reference."""
    gate = flow.config.gate
    requester: Requester | None = None
    t0 = time.perf_counter()
    try:
        requester = flow.client.requester()
        record = flow.client.resolve(flow.mref.name, flow.mref.ref)
    except TrustloadError as exc:
        failed = CheckResult.failed("registry", exc.code, exc.message)
        failed = failed.with_ms((time.perf_counter() - t0) * 1000.0)
        return flow.deny([failed], None, requester, None)
    fresh = check_freshness(record, utc_now(), gate.max_staleness, gate.clock_skew)
    if not fresh.ok:
        return flow.deny([fresh], record, requester, None)
    flow.checks.append(
        CheckResult.passed(
            "registry",
            f"{flow.requested} -> {record.name}@{record.version} ({record.artifact_digest})",
            (time.perf_counter() - t0) * 1000.0,
        )
    )
    return requester, record


def _trusted_state(flow: _Flow, record: VersionRecord) -> TrustedState | None:
    """The anti-downgrade high-water mark; an unreadable one is a failed check."""
    from trustload.state import load_state

    try:
        return load_state(flow.config.gate.state_dir, record.name, flow.config.gate.environment)
    except TrustloadError as exc:
        flow.checks.append(CheckResult.failed("trusted_state", exc.code, exc.message))
        return None


def _image_step(
    flow: _Flow,
    early: list[CheckResult],
    record: VersionRecord,
    requester: Requester,
    policy_digest: str,
) -> tuple[str | None, GateResult | None]:
    """R2.5: the serving image's own cosign signature ([gate.image]), on every decision.
    Returns the image digest (the attestation's container must be it) and a denial."""
    gate = flow.config.gate
    if gate.image is None:
        return None, None
    from trustload.image import gate_image_check
    from trustload.oci.reference import parse_reference

    image_digest = parse_reference(gate.image.reference).digest
    image = gate_image_check(gate.image, getattr(flow.config, "oci", None), flow.now)
    if not image.ok:
        denied = flow.deny([*early, image], record, requester, policy_digest)
        denied.decision.extra["image_digest"] = image_digest
        return image_digest, denied
    flow.checks.append(image)
    return image_digest, None


def _download_and_decide(
    flow: _Flow,
    record: VersionRecord,
    requester: Requester,
    trusted: TrustedState | None,
    engine: PolicyEngine,
    early: list[CheckResult],
    image_digest: str | None,
) -> GateResult:
    """R3.4 + R3.5: the record's source downloads by digest into the cache, then the
    engine decides over the exact cached bytes (whichever source delivered them)."""
    from trustload.engine import GateFacts
    from trustload.sources import source_for

    config, gate = flow.config, flow.config.gate
    base = GateFacts(
        requested=flow.requested,
        environment=gate.environment,
        now=flow.now,
        clock_skew=timedelta(seconds=gate.clock_skew),
        layout=ModelLayout("directory", record.name, ()),  # replaced by the source's
        signature_bundle=None,
        attestation=None,
        anchors=trust_anchors(config),
        expect=Expectations(container_digest=image_digest or gate.runtime_container_digest),
        record=record,
        requester=requester,
        trusted_state=trusted,
        allowed_stages=_stages(gate),
        pre_checks=tuple(flow.checks),
        require_change_ticket=gate.require_change_ticket,
        require_attestation_window=gate.attestation_window_required(),
    )
    try:
        source = source_for(record, flow.client, config.oci)
    except TrustloadError as exc:
        failed = failure("download", ReasonCode.REGISTRY_UNAVAILABLE, exc)
        return flow.deny([*early, failed], record, requester, engine.digest)
    try:
        result = _fetch_and_evaluate(flow, source, base, engine, early)
    finally:
        source.close()
    if image_digest is not None:
        result.decision.extra["image_digest"] = image_digest
    return result


def _fetch_and_evaluate(
    flow: _Flow,
    source: ModelSource,
    base: GateFacts,
    engine: PolicyEngine,
    early: list[CheckResult],
) -> GateResult:
    """Cached model files are first handed over unhashed (the engine hashes them
    anyway); on a digest or signature mismatch the cache re-verifies every blob,
    evicts and re-fetches what no longer matches (once), and the engine decides again."""
    from trustload.cache import BlobCache
    from trustload.engine import evaluate

    record = base.record
    assert record is not None
    cache = BlobCache(flow.config.gate.cache_dir)
    max_bytes = flow.config.registry.max_download_bytes
    suspect = {ReasonCode.DIGEST_MISMATCH, ReasonCode.SIGNATURE_INVALID}
    for quick in (True, False):
        t1 = time.perf_counter()
        try:
            fetched = source.fetch(cache, record, max_bytes, quick=quick)
        except (TrustloadError, OSError) as exc:
            # A cache that cannot be written (full disk, read-only mount) is no excuse
            # to load anything: it denies like a Registry that cannot deliver.
            failed = failure("download", ReasonCode.REGISTRY_UNAVAILABLE, exc)
            failed = failed.with_ms((time.perf_counter() - t1) * 1000.0)
            return flow.deny([*early, failed], record, base.requester, engine.digest)
        download = CheckResult.passed(
            "download", fetched.describe(), (time.perf_counter() - t1) * 1000.0
        )
        facts = replace(
            base,
            layout=fetched.layout,
            signature_bundle=fetched.signature,
            attestation=fetched.attestation,
            pre_checks=(*base.pre_checks, download),
        )
        outcome = evaluate(facts, engine)
        decision = outcome.decision
        if decision.permitted or not fetched.unhashed or not suspect & set(decision.reasons):
            break
    if not decision.permitted or outcome.verified is None:
        return GateResult(decision, record, None, None)
    held = Held(facts, outcome.verified)
    return GateResult(decision, record, fetched.layout, record.files, held)


def _warm_up(flow: _Flow, result: GateResult, hook: Callable[[GateResult], None]) -> GateResult:
    """R3.6 / R9 chaos: warm up, then decide again over a fresh record (a revocation,
    quarantine, stage change or policy edit meanwhile turns the permit into a deny)."""
    decision = result.decision
    try:
        hook(result)
    except Exception as exc:  # fail closed: a failed warm-up never serves
        decision.checks.append(failure("warmup", ReasonCode.POLICY_DENY, exc))
    assert result.held is not None and result.record is not None
    decision.checks.append(recheck(flow.config, flow.client, result.held, "recheck"))
    if decision.permitted:
        return result
    decision.event = Event.STARTUP_DENY
    return GateResult(decision, result.record, None, None)


# ------------------------------------------------------------------ re-decisions


def redecide(
    config: ClientFileConfig,
    held: Held,
    record: VersionRecord,
    *,
    requester: Requester | None = None,
    now: datetime | None = None,
    offline: bool = False,
) -> Decision:
    """The whole decision again for a version already verified and held in memory.

    Refresh, SIGHUP and the post-warm-up re-check call this: the same engine over the
    Registry's record now, the policy bundle on disk now (its digest and its Rego), the
    clock now (attestation window, revalidation) and the requester now. The bytes are
    not downloaded or hashed again: the digest measured at load is re-compared with the
    record, and this runtime trusts exactly the version it serves (anti-downgrade).

    ``offline``: the Registry cannot be reached and ``record`` is the last one it sent.
    Everything that does not need it (policy bundle, clock, evidence) is still decided;
    its freshness is not (``max_staleness`` takes the model out of service for that).
    """
    from trustload.checks.image import NAME as IMAGE_CHECK
    from trustload.engine import assemble, decide, record_facts
    from trustload.rules import RECORD_CHECKS, run_checks

    gate = config.gate
    moment = now if now is not None else utc_now()
    engine, error = _load_policy(gate.policy_dir)
    prior = held.facts
    assert prior.record is not None
    served = TrustedState(
        model=prior.record.name,
        environment=gate.environment,
        version=prior.record.version,
        alias=record.alias,
        alias_revision=record.alias_revision,
        artifact_digest=held.verified.artifact_digest or prior.record.artifact_digest,
    )
    facts = replace(
        prior,
        now=moment,
        record=record,
        requester=requester if requester is not None else prior.requester,
        trusted_state=served,
        allowed_stages=_stages(gate),
        clock_skew=timedelta(seconds=gate.clock_skew),
        pre_checks=(
            CheckResult.passed("offline", "Registry unreachable: its last record, re-decided")
            if offline
            else check_freshness(record, utc_now(), gate.max_staleness, gate.clock_skew),
            # The serving image is this process: its signature, verified at admission,
            # cannot change while it runs (and an OCI registry call per refresh buys nothing).
            *(c for c in prior.pre_checks if c.name == IMAGE_CHECK),
        ),
        verified=held.verified,
    )
    if engine is None:
        checks = [*facts.pre_checks, *run_checks(RECORD_CHECKS, record_facts(facts, None, error))]
        return assemble(
            checks,
            requested=facts.requested,
            environment=gate.environment,
            record=record,
            requester=facts.requester,
            policy_digest=None,
            now=moment,
        )
    return decide(facts, engine)


def recheck(config: ClientFileConfig, client: RegistryClient, held: Held, name: str) -> CheckResult:
    """One check summarising :func:`redecide` over the Registry's current record."""
    prior = held.facts.record
    assert prior is not None
    try:
        fresh = client.get_version(prior.name, prior.version)
    except TrustloadError as exc:
        return CheckResult.failed(name, exc.code, f"after warm-up: {exc.message}")
    again = redecide(config, held, fresh)
    bad = [c for c in again.checks if not c.ok]
    if not bad:
        return CheckResult.passed(name, "the whole decision still permits after warm-up")
    code = bad[0].code or ReasonCode.POLICY_DENY
    return CheckResult.failed(name, code, "; ".join(f"{c.name}: {c.detail}" for c in bad))
