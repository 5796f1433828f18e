"""The R3 start-up / refresh flow: gather facts through adapters, decide, record.

1. Token and mTLS channel (R2.1): the requester comes from the token's claims and the
   client certificate's identity.
2. Resolve the alias or version to a record (R2.2), pinned by digest.
3. Deny at once when revoked, quarantined or in a stage the environment does not allow
   (R2.3, R2.4): a full decision listing every failing code that can be known without
   downloading (stage, revocation, policy digest, revalidation, tenancy, downgrade).
4. Download **by digest** into the content-addressed cache (file blob, or the manifest
   then every file blob; signature bundle; attestation), re-verifying cached blobs.
5. Run the engine (:func:`trustload.engine.decide`) over cache paths, with the
   Registry record as the expectations and the token as the requester.
6. Permit: optional warm-up hook, re-check of the record (a revocation during warm-up
   denies, R9 chaos), then the anti-downgrade state moves forward.

Channel failures become decisions (AUTH_FAILED, TLS_POLICY, REGISTRY_NOT_ALLOWED,
REGISTRY_UNAVAILABLE, NOT_FOUND), never tracebacks. Every decision is audited once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustload.decision import CheckResult, Decision, Event, ReasonCode, timed, utc_now
from trustload.digests import FileEntry, ModelLayout, digests_equal, manifest_bytes
from trustload.errors import TrustloadError, UsageError
from trustload.facts import (
    Expectations,
    ModelRef,
    Requester,
    TrustAnchors,
    TrustedState,
    VersionRecord,
)

if TYPE_CHECKING:
    from trustload.cache import BlobCache
    from trustload.client.api import RegistryClient
    from trustload.config import ClientFileConfig
    from trustload.policy import PolicyEngine

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


# ----------------------------------------------------------------- pure helpers


def early_checks(
    record: VersionRecord,
    *,
    environment: str,
    runtime_policy_digest: str | None,
    requester: Requester | None,
    trusted_state: TrustedState | None,
    now: datetime,
    require_change_ticket: bool,
    policy_error: str | None = None,
) -> list[CheckResult]:
    """Every check that needs only the record (no download): R2.3, R2.4, R2.7-R2.9, R5."""
    from trustload.checks.downgrade import check_downgrade
    from trustload.checks.policy_digest import check_policy_digest
    from trustload.checks.revocation import check_quarantined, check_revoked
    from trustload.checks.stage import check_stage, default_allowed_stages
    from trustload.checks.tenancy import check_purpose, check_tenant
    from trustload.checks.validity import check_revalidation

    allowed = default_allowed_stages(environment)

    def policy() -> CheckResult:
        if runtime_policy_digest is None:
            return CheckResult.failed(
                "policy_digest",
                ReasonCode.POLICY_DIGEST_MISMATCH,
                f"runtime policy bundle unusable: {policy_error or 'not loaded'}",
            )
        return check_policy_digest(runtime_policy_digest, record.policy_digest)

    return [
        timed("stage", lambda: check_stage(record.stage, environment, allowed)),
        timed("revoked", lambda: check_revoked(record.revoked, record.revoked_reason)),
        timed(
            "quarantined",
            lambda: check_quarantined(record.quarantined, record.quarantine_reason),
        ),
        timed("policy_digest", policy),
        timed("revalidation", lambda: check_revalidation(record.card.revalidate_by, now)),
        timed("tenant", lambda: check_tenant(requester, record.card)),
        timed("purpose", lambda: check_purpose(requester, record.card)),
        timed(
            "downgrade",
            lambda: check_downgrade(
                record, trusted_state, require_change_ticket=require_change_ticket
            ),
        ),
    ]


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


def parse_manifest(raw: bytes) -> tuple[FileEntry, ...]:
    """Parse a directory manifest blob strictly; it must be canonical (re-serialises
    to the same bytes), so two different manifests can never share a digest."""
    from trustload.client.api import RecordError, parse_files

    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrustloadError(ReasonCode.DIGEST_MISMATCH, "manifest blob is not JSON") from exc
    if not isinstance(doc, dict) or set(doc) != {"mediaType", "files"}:
        raise TrustloadError(ReasonCode.DIGEST_MISMATCH, "manifest blob has unexpected fields")
    try:
        entries = parse_files(doc["files"])
    except RecordError as exc:
        raise TrustloadError(ReasonCode.DIGEST_MISMATCH, f"manifest: {exc.message}") from exc
    if manifest_bytes(entries) != raw:
        raise TrustloadError(ReasonCode.DIGEST_MISMATCH, "manifest blob is not canonical")
    return entries


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


@dataclass
class _Fetched:
    layout: ModelLayout
    signature: bytes | None
    attestation: bytes | None
    fetched: int = 0
    cached: int = 0
    evicted: int = 0
    resumed: int = 0
    unhashed: int = 0  # cached model files left for the engine to hash (quick path)

    def describe(self) -> str:
        text = (
            f"{self.fetched} fetched, {self.cached} re-verified from cache, "
            f"{self.evicted} evicted and fetched again, {self.resumed} resumed"
        )
        if self.unhashed:
            text += f" ({self.unhashed} cached model file(s) hashed by the checks below)"
        return text


def fetch_model(
    client: RegistryClient,
    cache: BlobCache,
    record: VersionRecord,
    max_bytes: int,
    *,
    quick: bool = False,
) -> _Fetched:
    """R3.4: download by digest everything the record pins; return cache paths.

    Every downloaded blob, the manifest and the evidence are hashed here. With
    ``quick``, cached *model files* of the right size are handed on unhashed: the
    engine hashes exactly those bytes on this same load (digest pin and signature),
    and a mismatch there sends the gate back here with ``quick=False``. That saves a
    whole pass over a large model on every warm start and refresh.
    """
    total = sum(f.size for f in record.files)
    if total > max_bytes:
        raise TrustloadError(
            ReasonCode.REGISTRY_UNAVAILABLE,
            f"model of {total} bytes exceeds registry.max_download_bytes={max_bytes}",
        )
    results = []

    def get(digest: str, size: int | None, limit: int, label: str, model: bool = False) -> Path:
        res = cache.ensure(
            client, digest, size, limit=limit, label=label, reverify=not (quick and model)
        )
        results.append(res)
        return res.path

    if record.kind == "file":
        entry = record.files[0]
        where = get(record.artifact_digest, record.artifact_size, max_bytes, entry.path, True)
        layout = ModelLayout("file", entry.path, ((entry.path, where),))
    else:
        manifest_path = get(record.artifact_digest, None, MAX_MANIFEST_BYTES, "manifest")
        listed = parse_manifest(manifest_path.read_bytes())
        if listed != record.files:
            raise TrustloadError(
                ReasonCode.DIGEST_MISMATCH, "the manifest blob does not list the record's files"
            )
        paths = []
        for entry in record.files:
            paths.append(
                (
                    entry.path,
                    get(f"sha256:{entry.sha256}", entry.size, max_bytes, entry.path, True),
                )
            )
        layout = ModelLayout("directory", record.name, tuple(paths))

    def evidence(digest: str | None, label: str) -> bytes | None:
        if digest is None:
            return None
        return get(digest, None, MAX_EVIDENCE_BYTES, label).read_bytes()

    signature = evidence(record.signature_digest, "signature")
    attestation = evidence(record.attestation_digest, "attestation")
    out = _Fetched(layout, signature, attestation)
    for res in results:
        out.fetched += res.fetched
        out.cached += not res.fetched
        out.evicted += res.evicted
        out.resumed += bool(res.resumed_from)
        out.unhashed += not res.hashed
    return out


def _decision(
    checks: list[CheckResult],
    *,
    requested: str,
    environment: str,
    record: VersionRecord | None,
    requester: Requester | None,
    policy_digest: str | None,
    now: datetime,
) -> Decision:
    """A decision assembled here (no engine run): channel failures and early denials."""
    card = record.card if record is not None else None
    permitted = bool(checks) and all(c.ok for c in checks)
    return Decision(
        event=Event.STARTUP_PERMIT if permitted else Event.STARTUP_DENY,
        checks=checks,
        requested=requested,
        model=record.name if record else requested.partition("@")[0] or None,
        version=record.version if record else None,
        artifact_digest=record.artifact_digest if record else None,
        policy_digest=policy_digest,
        git_sha=record.git_sha if record else None,
        container_digest=record.container_digest if record else None,
        dataset_snapshot=record.dataset_snapshot if record else None,
        tenant=card.tenant_id if card else (requester.tenant_id if requester else None),
        domain=card.domain if card else (requester.domain if requester else None),
        environment=environment,
        caller=requester.caller if requester else None,
        at=now,
    )


def _recheck_after_warmup(
    client: RegistryClient,
    record: VersionRecord,
    environment: str,
    max_age: float = 300.0,
    skew: float = 60.0,
) -> list[CheckResult]:
    """R9 chaos: the record may have been revoked or quarantined while warming up."""
    from trustload.checks.revocation import check_quarantined, check_revoked
    from trustload.checks.stage import check_stage, default_allowed_stages

    def fresh() -> VersionRecord:
        return client.get_version(record.name, record.version)

    try:
        now_record = fresh()
    except TrustloadError as exc:
        return [CheckResult.failed("recheck", exc.code, f"after warm-up: {exc.message}")]
    out = [
        check_freshness(now_record, utc_now(), max_age, skew),
        timed(
            "recheck_revoked", lambda: check_revoked(now_record.revoked, now_record.revoked_reason)
        ),
        timed(
            "recheck_quarantined",
            lambda: check_quarantined(now_record.quarantined, now_record.quarantine_reason),
        ),
        timed(
            "recheck_stage",
            lambda: check_stage(now_record.stage, environment, default_allowed_stages(environment)),
        ),
    ]
    if not digests_equal(now_record.artifact_digest, record.artifact_digest):
        out.append(
            CheckResult.failed(
                "recheck_digest", ReasonCode.DIGEST_MISMATCH, "the record changed during warm-up"
            )
        )
    return out


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


def _run(
    config: ClientFileConfig,
    mref: ModelRef,
    now: datetime,
    client: RegistryClient,
    update_state: bool,
    warmup_hook: Callable[[GateResult], None] | None,
) -> GateResult:
    from trustload.cache import BlobCache
    from trustload.engine import GateFacts, decide
    from trustload.state import load_state, save_state

    gate = config.gate
    requested = str(mref)
    env = gate.environment
    checks: list[CheckResult] = []

    def deny(extra: list[CheckResult], **kw: Any) -> GateResult:
        d = _decision(checks + extra, requested=requested, environment=env, now=now, **kw)
        return GateResult(d, kw.get("record"), None, None)

    # R3.1 / R3.2: who we are, and what the Registry says about the reference.
    requester: Requester | None = None
    t0 = time.perf_counter()
    try:
        requester = client.requester()
        record = client.resolve(mref.name, mref.ref)
    except TrustloadError as exc:
        failed = CheckResult.failed("registry", exc.code, exc.message)
        failed = failed.with_ms((time.perf_counter() - t0) * 1000.0)
        return deny([failed], record=None, requester=requester, policy_digest=None)
    fresh = check_freshness(record, utc_now(), gate.max_staleness, gate.clock_skew)
    if not fresh.ok:
        return deny([fresh], record=record, requester=requester, policy_digest=None)
    checks.append(
        CheckResult.passed(
            "registry",
            f"{requested} -> {record.name}@{record.version} ({record.artifact_digest})",
            (time.perf_counter() - t0) * 1000.0,
        )
    )

    # The runtime policy bundle and trusted state (local facts).
    engine: PolicyEngine | None = None
    policy_error: str | None = None
    try:
        engine = _engine_for(gate.policy_dir)
    except (UsageError, TrustloadError, OSError) as exc:
        policy_error = str(exc)
    trusted: TrustedState | None = None
    try:
        trusted = load_state(gate.state_dir, record.name, env)
    except TrustloadError as exc:
        checks.append(CheckResult.failed("trusted_state", exc.code, exc.message))

    # R3.3: deny at once, with every code knowable without downloading.
    early = early_checks(
        record,
        environment=env,
        runtime_policy_digest=engine.digest if engine else None,
        requester=requester,
        trusted_state=trusted,
        now=now,
        require_change_ticket=gate.require_change_ticket,
        policy_error=policy_error,
    )
    digest_now = engine.digest if engine else None
    if blocked_at_once(early) or engine is None:
        return deny(early, record=record, requester=requester, policy_digest=digest_now)

    # R3.4 + R3.5: download by digest into the cache, then every check and the policy
    # over the exact cached bytes. Cached model files are first handed to the engine
    # unhashed (it hashes them anyway); if the engine then finds a digest or signature
    # mismatch, the cache re-verifies every blob, evicts and re-fetches what no longer
    # matches (once), and the engine decides again.
    # R2.5: the serving image's own cosign signature ([gate.image]), on every decision.
    image_digest: str | None = None
    if gate.image is not None:
        from trustload.image import gate_image_check
        from trustload.oci.reference import parse_reference

        image_digest = parse_reference(gate.image.reference).digest
        image = gate_image_check(gate.image, getattr(config, "oci", None), now)
        if not image.ok:
            denied = deny(
                [*early, image], record=record, requester=requester, policy_digest=digest_now
            )
            denied.decision.extra["image_digest"] = image_digest
            return denied
        checks.append(image)

    cache = BlobCache(gate.cache_dir)
    anchors = trust_anchors(config)
    suspect = {ReasonCode.DIGEST_MISMATCH, ReasonCode.SIGNATURE_INVALID}
    for quick in (True, False):
        t1 = time.perf_counter()
        try:
            fetched = fetch_model(
                client, cache, record, config.registry.max_download_bytes, quick=quick
            )
        except (TrustloadError, OSError) as exc:
            # A cache that cannot be written (full disk, read-only mount) is no excuse
            # to load anything: it denies like a Registry that cannot deliver.
            code, message = (
                (exc.code, exc.message)
                if isinstance(exc, TrustloadError)
                else (ReasonCode.REGISTRY_UNAVAILABLE, f"cache {gate.cache_dir}: {exc}")
            )
            failed = CheckResult.failed("download", code, message)
            failed = failed.with_ms((time.perf_counter() - t1) * 1000.0)
            return deny(
                [*early, failed], record=record, requester=requester, policy_digest=digest_now
            )
        download = CheckResult.passed(
            "download", fetched.describe(), (time.perf_counter() - t1) * 1000.0
        )
        facts = GateFacts(
            requested=requested,
            environment=env,
            now=now,
            clock_skew=timedelta(seconds=gate.clock_skew),
            layout=fetched.layout,
            signature_bundle=fetched.signature,
            attestation=fetched.attestation,
            anchors=anchors,
            expect=Expectations(container_digest=image_digest or gate.runtime_container_digest),
            record=record,
            requester=requester,
            trusted_state=trusted,
            pre_checks=(*checks, download),
            require_change_ticket=gate.require_change_ticket,
            require_attestation_window=gate.attestation_window_required(),
        )
        decision = decide(facts, engine)
        if image_digest is not None:
            decision.extra["image_digest"] = image_digest
        if decision.permitted or not fetched.unhashed or not suspect & set(decision.reasons):
            break
    if not decision.permitted:
        return GateResult(decision, record, None, None)
    result = GateResult(decision, record, fetched.layout, record.files)

    # R3.6 / R9 chaos: warm up, then make sure nothing was revoked meanwhile.
    if warmup_hook is not None:
        try:
            warmup_hook(result)
        except Exception as exc:  # fail closed: a failed warm-up never serves
            code = exc.code if isinstance(exc, TrustloadError) else ReasonCode.POLICY_DENY
            decision.checks.append(
                CheckResult.failed("warmup", code, f"{type(exc).__name__}: {exc}")
            )
        decision.checks.extend(
            _recheck_after_warmup(client, record, env, gate.max_staleness, gate.clock_skew)
        )
        if not decision.permitted:
            decision.event = Event.STARTUP_DENY
            return GateResult(decision, record, None, None)
    if update_state:
        new = next_state(record, env, trusted)
        if new is not None:
            save_state(gate.state_dir, new)
    return result
