"""The serving runtime's lifecycle: gated start-up, refresh, atomic swap, rollback (R3, R5, R9).

States and rules, in the order the code applies them:

* **Start-up**: run the gate. Permit -> load the verified bytes, warm up, re-check the
  Registry (revoked / quarantined / stage / alias still pointing here), then publish
  the model (ready). Deny -> try the previous healthy versions this runtime served
  (newest first, only those still in the cache), each re-verified in full by the gate
  against the Registry's current record and recorded as ``rollback_execute``. None
  passes -> start-up is denied.
* **Refresh** (every ``refresh_interval`` and on SIGHUP): re-resolve the reference.
  The current version revoked, quarantined or out of stage -> it is withdrawn at once
  (never served after the refresh that saw it), then the alias target is tried, then
  a rollback, else not ready. The alias moved -> the candidate is gated, loaded and
  warmed beside the current model and swapped in by replacing one reference; a
  candidate that fails anything leaves the current model serving and is recorded as
  ``startup_deny``.
* **Freshness**: without a successful Registry answer for ``max_staleness`` seconds the
  runtime stops serving (checked on every request, so a refresh stuck in network
  timeouts cannot stretch the limit) and serves again once the Registry answers and
  the model is still in good standing.
* **Anti-downgrade**: the trusted state advances only when a model is actually
  published after a normal gate permit; a rollback never advances it (it is an
  explicit, logged lifecycle action), so a replayed old alias answer stays blocked.

Every decision goes to the hash-chained audit log and to the metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from trustload.audit import AuditLog
from trustload.config import ClientFileConfig
from trustload.decision import (
    CheckResult,
    Decision,
    Event,
    ReasonCode,
    rfc3339,
    timed,
    utc_now,
)
from trustload.digests import FileEntry, digests_equal, parse_digest
from trustload.errors import TrustloadError
from trustload.facts import ModelRef, Requester, TrustedState, VersionRecord
from trustload.metrics import Metrics
from trustload.serve.active import ActiveModel
from trustload.serve.loader import LoadedModel, load_verified
from trustload.state import (
    forget_healthy,
    healthy_versions,
    load_last_record,
    record_healthy,
    save_last_record,
    save_state,
)

if TYPE_CHECKING:
    from trustload.client.api import RegistryClient
    from trustload.gate import GateResult

log = logging.getLogger(__name__)

WarmupHook = Callable[[VersionRecord], None]
GateFn = Callable[..., "GateResult"]


class StartupDenied(Exception):
    """Start-up was denied and no previous healthy version could be rolled back to."""

    def __init__(self, decision: dict[str, Any]) -> None:
        super().__init__(", ".join(decision.get("reasons") or []) or "denied")
        self.decision = decision


_TRANSIENT = frozenset(
    {ReasonCode.REGISTRY_UNAVAILABLE, ReasonCode.AUTH_FAILED, ReasonCode.TLS_POLICY}
)


@dataclass
class _Memo:
    """Denied candidates, so an identical Registry answer is not re-gated (and re-audited)
    every interval. A denial for a channel problem is not remembered (retried next
    interval); any other is retried after ``retry_after`` seconds or as soon as the
    Registry's answer for the reference changes."""

    until: dict[tuple[Any, ...], float] = field(default_factory=dict)

    def blocked(self, key: tuple[Any, ...], now: float) -> bool:
        return self.until.get(key, float("-inf")) > now

    def remember(self, key: tuple[Any, ...], reasons: list[str], now: float, retry: float) -> None:
        if reasons and not set(reasons) <= _TRANSIENT:
            self.until[key] = now + retry

    @staticmethod
    def key(record: VersionRecord) -> tuple[Any, ...]:
        return (
            record.version,
            record.artifact_digest,
            record.stage,
            record.revoked,
            record.quarantined,
            record.alias_revision,
        )


def _rollback_history(record: VersionRecord, served_digest: str) -> CheckResult:
    """Rollback: the version must still pin the artifact this runtime served (R5)."""
    if digests_equal(record.artifact_digest, served_digest):
        return CheckResult.passed("rollback_history", f"served before as {served_digest}")
    return CheckResult.failed(
        "rollback_history",
        ReasonCode.DOWNGRADE_BLOCKED,
        f"version {record.version} now pins {record.artifact_digest}, "
        f"served before as {served_digest}",
    )


class ServingRuntime:
    """One served model reference (``name@alias`` or ``name@version``) and its lifecycle."""

    def __init__(
        self,
        config: ClientFileConfig,
        ref: ModelRef,
        *,
        metrics: Metrics | None = None,
        gate: GateFn | None = None,
        client: RegistryClient | None = None,
        warmup_hook: WarmupHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.ref = ref
        self.environment = config.gate.environment
        self.metrics = metrics or Metrics(clock)
        self.audit = AuditLog(config.gate.audit_log)
        self._gate_fn = gate
        self._client = client
        self._warmup_hook = warmup_hook
        self._clock = clock
        self._model: ActiveModel | None = None  # loaded and verified
        self._published = False  # False while withdrawn for staleness
        self._last_contact: float | None = None
        self._stale_recorded = False
        self._denied = _Memo()
        self._revoked_versions: set[str] = set()
        self._next_rollback = 0.0
        self._not_ready_recorded = False
        self._cycle = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.metrics.ready.set_function(lambda: 0.0 if self.current() is None else 1.0)

    # ------------------------------------------------------------------ HTTP view
    def current(self) -> ActiveModel | None:
        """The model to serve now, or None (not ready). Enforces ``max_staleness``."""
        model = self._model
        if model is None or not self._published:
            return None
        if self._stale():
            return None
        return model

    def live(self) -> bool:
        return not self._stop.is_set()

    def _stale(self) -> bool:
        last = self._last_contact
        return last is None or self._clock() - last > self.config.gate.max_staleness

    # ------------------------------------------------------------------ plumbing
    def client(self) -> RegistryClient:
        if self._client is None:
            from trustload.client.api import RegistryClient

            self._client = RegistryClient(self.config.registry)
        return self._client

    def _gate(
        self, ref: ModelRef, event: Event, client: RegistryClient | None = None
    ) -> GateResult:
        fn = self._gate_fn
        if fn is None:
            from trustload.gate import run_gate

            fn = run_gate
        config = self.config
        if event is Event.ROLLBACK_EXECUTE:
            # A rollback is the explicit lifecycle exception to anti-downgrade (R5): it is
            # judged against this runtime's healthy-version history (the caller checks the
            # version and its artifact digest are ones it served) instead of the
            # high-water mark, which the gate would read from state_dir. Every other
            # check runs in full, and the trusted state is left untouched.
            scratch = config.gate.state_dir / "rollback-view"
            scratch.mkdir(parents=True, exist_ok=True)
            gate_cfg = config.gate.model_copy(update={"state_dir": scratch})
            config = config.model_copy(update={"gate": gate_cfg})
        return fn(
            config,
            ref,
            client=client or self.client(),
            record_audit=False,  # the runtime records one decision per attempt, below
            update_state=False,  # advanced only once the model is actually published
            event=event,
        )

    def _contact(self) -> None:
        self._last_contact = self._clock()
        self.metrics.registry_contact(self._last_contact)
        if self._stale_recorded:
            self._stale_recorded = False
            model = self._model
            self._lifecycle(
                "serving_resumed",
                None if model is None else model.record,
                detail="Registry contact restored",
            )

    def _record(self, decision: Decision) -> dict[str, Any]:
        doc = decision.to_json()
        self.audit.append(doc)
        self.metrics.observe_decision(doc)
        return doc

    def _lifecycle(self, event: str, model: VersionRecord | None, **extra: Any) -> None:
        doc: dict[str, Any] = {
            "event": event,
            "requested": str(self.ref),
            "model": self.ref.name if model is None else model.name,
            "version": None if model is None else model.version,
            "artifact_digest": None if model is None else model.artifact_digest,
            "environment": self.environment,
            "at": rfc3339(utc_now()),
        }
        if model is not None:  # the R7 identity of what is (or was) served
            doc.update(
                policy_digest=model.policy_digest,
                git_sha=model.git_sha,
                container_digest=model.container_digest,
                dataset_snapshot=model.dataset_snapshot,
                tenant=model.card.tenant_id,
                domain=model.card.domain,
            )
        doc.update(extra)
        self.audit.append(doc)
        log.info("%s %s", event, {k: v for k, v in doc.items() if k != "at"})

    def _publish(self, model: ActiveModel | None) -> None:
        self._model = model
        self._published = model is not None
        if model is None:
            self.metrics.set_loaded(None, None, None)
        else:
            self.metrics.set_loaded(model.name, model.version, model.artifact_digest)

    # ------------------------------------------------------------------ one attempt
    def _attempt(
        self,
        ref: ModelRef,
        event: Event,
        *,
        offline: tuple[RegistryClient, str] | None = None,
        served_digest: str | None = None,
    ) -> tuple[ActiveModel | None, dict[str, Any]]:
        """Gate, load, warm up and re-check one candidate beside whatever is serving.

        Returns the ready model (not yet published) or None, and the recorded decision.
        ``offline`` = (a client answering from the cached record, why that is allowed):
        the Registry re-check is then replaced by that statement.
        """
        started = time.perf_counter()
        try:
            result = self._gate(ref, event, None if offline is None else offline[0])
        except TrustloadError as exc:
            decision = Decision(
                event=event,
                checks=[CheckResult.failed("gate", exc.code, exc.message)],
                requested=str(ref),
                model=ref.name,
                environment=self.environment,
            )
            return None, self._finish(decision, event, started)
        decision = result.decision
        if result.decision.permitted and result.record is not None and offline is None:
            self._contact()
        if served_digest is not None and result.record is not None:
            decision.checks.append(_rollback_history(result.record, served_digest))
        if not decision.permitted or result.record is None or result.layout is None:
            if not decision.checks:
                decision.checks.append(
                    CheckResult.failed("gate", ReasonCode.POLICY_DENY, "gate returned no checks")
                )
            return None, self._finish(decision, event, started)
        loaded = self._load_and_warm(result, offline)
        doc = self._finish(decision, event, started)
        if loaded is None:
            return None, doc
        return ActiveModel(result.record, loaded, doc, utc_now(), result.held), doc

    def _load_and_warm(
        self, result: GateResult, offline: tuple[RegistryClient, str] | None
    ) -> LoadedModel | None:
        """Load the verified bytes, warm up, then decide again over the Registry's record;
        every step is a check appended to the gate's decision (None: one failed)."""
        record, layout = result.record, result.layout
        assert record is not None and layout is not None
        files = result.files if result.files is not None else record.files
        if not files and record.kind == "file":
            files = (FileEntry(layout.files[0][0], parse_digest(record.artifact_digest), 0),)
        loaded: list[LoadedModel] = []

        def load() -> CheckResult:
            fmt = record.format or record.card.format
            allow = self.config.gate.allow_pickle
            loaded.append(load_verified(layout, files, fmt, allow_pickle=allow))
            return CheckResult.passed("load", f"{loaded[0].format} loaded from verified bytes")

        def warmup() -> CheckResult:
            if self._warmup_hook is not None:
                self._warmup_hook(record)
            loaded[0].warmup()
            return CheckResult.passed("warmup", "warm-up inference succeeded")

        def recheck() -> CheckResult:
            if offline is not None:
                return CheckResult.passed("offline_start", offline[1])
            return self._recheck_after_load(result)

        steps = (
            ("load", load),
            ("warmup", warmup),
            ("offline_start" if offline else "registry_recheck", recheck),
        )
        for name, step in steps:
            check = timed(name, step)
            result.decision.checks.append(check)
            if not check.ok:
                return None
        return loaded[0]

    def _recheck_after_load(self, result: GateResult) -> CheckResult:
        """R9 chaos: the whole decision again over the record after warm-up (bytes held
        in memory, nothing re-hashed), and the alias must still point here."""
        from trustload.gate import recheck

        record = result.record
        assert record is not None
        if result.held is None:
            return CheckResult.failed(
                "registry_recheck", ReasonCode.POLICY_DENY, "the gate held no verified evidence"
            )
        check = recheck(self.config, self.client(), result.held, "registry_recheck")
        if not check.ok:
            return check
        self._contact()
        if record.alias is not None:
            target = self.client().resolve(record.name, record.alias)
            if target.version != record.version:
                return CheckResult.failed(
                    "registry_recheck",
                    ReasonCode.POLICY_DENY,
                    f"alias {record.alias} moved to {target.version} during warm-up",
                )
        return CheckResult.passed("registry_recheck", "still in good standing after warm-up")

    def _finish(self, decision: Decision, event: Event, started: float) -> dict[str, Any]:
        if event is Event.ROLLBACK_EXECUTE:
            decision.event = event
        else:
            decision.event = Event.STARTUP_PERMIT if decision.permitted else Event.STARTUP_DENY
        decision.latency_ms = (time.perf_counter() - started) * 1000.0
        if not decision.requested:
            decision.requested = str(self.ref)
        return self._record(decision)

    def _accept(
        self, active: ActiveModel, *, advance_state: bool, save_record: bool = True
    ) -> None:
        """Publish ``active`` (the atomic swap) and remember it as healthy."""
        previous = self._model
        self._publish(active)
        self._not_ready_recorded = False
        self._next_rollback = 0.0
        rec = active.record
        state_dir = self.config.gate.state_dir
        if advance_state:
            save_state(
                state_dir,
                TrustedState(
                    model=rec.name,
                    environment=self.environment,
                    version=rec.version,
                    alias=rec.alias,
                    alias_revision=rec.alias_revision,
                    artifact_digest=rec.artifact_digest,
                ),
            )
        record_healthy(state_dir, rec.name, self.environment, rec.version, rec.artifact_digest)
        if advance_state and save_record:
            self._remember(rec)
        if previous is None:
            self._lifecycle("serving_ready", rec)
        else:
            self.metrics.swaps.inc()
            self._lifecycle("serving_swap", rec, previous_version=previous.version)

    # ------------------------------------------------------------------ start-up
    def start(self) -> dict[str, Any]:
        """Gate and publish the model, or roll back, or raise :class:`StartupDenied`."""
        with self._cycle:
            active, doc = self._attempt(self.ref, Event.STARTUP_PERMIT)
            if active is not None:
                self._accept(active, advance_state=True)
                return doc
            denied_version = doc.get("version")
            reasons = doc.get("reasons", [])
            if ReasonCode.REVOKED in reasons and denied_version:
                self._revoked_versions.add(str(denied_version))
            if reasons == [ReasonCode.REGISTRY_UNAVAILABLE]:
                offline = self._offline_start() if self.config.gate.offline_start else None
                if offline is not None:
                    return offline
                raise StartupDenied(doc)  # every other path needs the Registry too
            rolled = self._rollback(exclude={str(denied_version)} if denied_version else set())
            if rolled is not None:
                return rolled
            raise StartupDenied(doc)

    def _offline_start(self) -> dict[str, Any] | None:
        """Start from the last Registry record if it is younger than ``max_staleness``."""
        from trustload.client.api import RecordError, parse_record
        from trustload.serve.offline import CachedRecordClient

        limit = self.config.gate.max_staleness
        started = time.perf_counter()

        def refuse(detail: str) -> None:
            decision = Decision(
                event=Event.STARTUP_DENY,
                checks=[
                    CheckResult.failed("offline_start", ReasonCode.REGISTRY_UNAVAILABLE, detail)
                ],
                requested=str(self.ref),
                model=self.ref.name,
                environment=self.environment,
            )
            self._finish(decision, Event.STARTUP_PERMIT, started)

        try:
            cached = load_last_record(self.config.gate.state_dir, self.ref.name, self.environment)
        except TrustloadError as exc:
            refuse(f"cached Registry record unusable: {exc.message}")
            return None
        if cached is None or cached.get("ref") != self.ref.ref:
            refuse(f"no cached Registry record for {self.ref}")
            return None
        try:
            fetched_at = datetime.fromisoformat(str(cached["fetched_at"]))
            record = parse_record(cached["record"])
        except (ValueError, KeyError, RecordError) as exc:
            refuse(f"cached Registry record unusable: {exc}")
            return None
        age = (utc_now() - fetched_at).total_seconds()
        if fetched_at.tzinfo is None or age < 0 or age >= limit:
            refuse(
                f"cached Registry record is {age:.0f}s old; offline start needs < {limit}s "
                "(max_staleness)"
            )
            return None
        why = (
            f"Registry unreachable; started from its record of {cached['fetched_at']} "
            f"({age:.0f}s old < max_staleness {limit}s)"
        )
        client = CachedRecordClient(self.config.registry, record)
        try:
            active, doc = self._attempt(self.ref, Event.STARTUP_PERMIT, offline=(client, why))
        finally:
            client.close()
        if active is None:
            return None
        # Freshness keeps counting from the record's real age, not from now.
        self._last_contact = self._clock() - age
        self.metrics.registry_contact(self._last_contact)
        self._accept(active, advance_state=True, save_record=False)
        return doc

    def _remember(self, record: VersionRecord) -> None:
        """Keep the last answer for our reference (offline start needs it, fresh)."""
        from trustload.serve.offline import record_document

        try:
            save_last_record(
                self.config.gate.state_dir,
                self.ref.name,
                self.environment,
                self.ref.ref,
                record_document(record),
                rfc3339(utc_now()),
            )
        except OSError as exc:
            log.warning("could not save the last Registry record: %s", exc)

    def _rollback(self, exclude: set[str]) -> dict[str, Any] | None:
        """Re-verify and publish the newest previous healthy version, if any passes."""
        state_dir = self.config.gate.state_dir
        cache = self.config.gate.cache_dir / "blobs" / "sha256"
        for item in reversed(healthy_versions(state_dir, self.ref.name, self.environment)):
            version = item["version"]
            if version in exclude or version in self._revoked_versions:
                continue
            try:
                hexdigest = parse_digest(item["artifact_digest"])
            except TrustloadError:
                continue
            if not (cache / hexdigest).is_file():
                continue  # only versions still in the cache are rollback candidates
            active, doc = self._attempt(
                ModelRef(self.ref.name, version),
                Event.ROLLBACK_EXECUTE,
                served_digest=item["artifact_digest"],
            )
            if active is not None:
                self._accept(active, advance_state=False)
                return doc
            if ReasonCode.REVOKED in doc.get("reasons", []):
                self._revoked_versions.add(version)
                forget_healthy(state_dir, self.ref.name, self.environment, version)
        return None

    # ------------------------------------------------------------------ refresh
    def refresh(self) -> None:
        """One refresh cycle (R3 on refresh). Safe to call from any thread."""
        with self._cycle:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        """R3 on refresh: re-decide what is served, follow the reference, else roll back."""
        current = self._model
        answer = self._ask_registry(current)
        if answer is None:
            if current is not None:
                # No Registry answer: still re-decide what does not need one (the policy
                # bundle on disk, the clock, the evidence), over the record it sent last.
                self._redecide_current(current, current.record, None, offline=True)
            return
        target, standing, requester = answer
        withdrawn: str | None = None
        if current is not None and standing is not None:
            withdrawn = self._redecide_current(current, standing, requester)
            if withdrawn is not None:
                current = None
        moved = current is None or target.version != current.version
        if moved and target.version != withdrawn and self._try_candidate(target):
            return
        if current is None and self._model is None and self._clock() >= self._next_rollback:
            self._rollback_or_not_ready(target, withdrawn)

    def _ask_registry(
        self, current: ActiveModel | None
    ) -> tuple[VersionRecord, VersionRecord | None, Requester] | None:
        """The Registry's answer for our reference and for the served version (and who we
        are now); None when it cannot be reached (staleness is then judged per request)."""
        try:
            target = self.client().resolve(self.ref.name, self.ref.ref)
            standing: VersionRecord | None = None
            if current is not None:
                standing = (
                    target
                    if target.version == current.version
                    else self.client().get_version(current.name, current.version)
                )
            requester = self.client().requester()
        except TrustloadError as exc:
            self.metrics.refresh_failures.labels(reason=str(exc.code)).inc()
            log.warning("refresh: Registry not reachable: %s", exc)
            if self._stale() and current is not None and not self._stale_recorded:
                self._stale_recorded = True
                self._lifecycle(
                    "serving_not_ready",
                    current.record,
                    reason=str(ReasonCode.REGISTRY_UNAVAILABLE),
                    detail=f"no Registry contact for more than {self.config.gate.max_staleness}s",
                )
            return None
        self._contact()
        self._remember(target)
        return target, standing, requester

    def _redecide_current(
        self,
        current: ActiveModel,
        standing: VersionRecord,
        requester: Requester | None,
        *,
        offline: bool = False,
    ) -> str | None:
        """The whole decision again for the served version (bytes held in memory, policy
        bundle and clock as they are now). A denial withdraws it at once and returns its
        version; the reasons go into the ``serving_withdrawn`` audit event."""
        from trustload.gate import redecide

        if current.held is None:
            check = CheckResult.failed(
                "redecide", ReasonCode.POLICY_DENY, "no verified evidence held for the model"
            )
            bad, codes = [check], [str(ReasonCode.POLICY_DENY)]
        else:
            decision = redecide(
                self.config, current.held, standing, requester=requester, offline=offline
            )
            if decision.permitted:
                return None
            bad = [c for c in decision.checks if not c.ok]
            codes = [str(code) for code in decision.reasons]
        # Withdraw first: a model that fails the decision is never served after this refresh.
        self._publish(None)
        if standing.revoked:
            self._revoked_versions.add(standing.version)
        if standing.revoked or standing.quarantined:
            forget_healthy(
                self.config.gate.state_dir, current.name, self.environment, current.version
            )
        self._lifecycle(
            "serving_withdrawn",
            current.record,
            reasons=codes,
            detail="; ".join(c.detail for c in bad),
            checks=[c.to_json() for c in bad],
        )
        self.metrics.decisions.labels(
            event="serving_withdrawn", decision="deny", reason=codes[0]
        ).inc()
        return current.version

    def _try_candidate(self, target: VersionRecord) -> bool:
        """Gate, load and swap in the reference's target, unless an identical answer was
        denied recently (not re-gated and re-audited every interval)."""
        key = _Memo.key(target)
        if self._denied.blocked(key, self._clock()):
            return False
        active, doc = self._attempt(self.ref, Event.STARTUP_PERMIT)
        if active is not None:
            self._accept(active, advance_state=True)
            return True
        self._denied.remember(
            key, list(doc.get("reasons") or []), self._clock(), self._retry_after()
        )
        if target.revoked:
            self._revoked_versions.add(target.version)
        return False

    def _rollback_or_not_ready(self, target: VersionRecord, withdrawn: str | None) -> None:
        """Roll back to a previous healthy version that passes the full decision, else
        record (once) that nothing is served."""
        exclude = {target.version} if target.revoked or target.quarantined else set()
        if withdrawn is not None:
            exclude.add(withdrawn)
        if self._rollback(exclude) is not None:
            return
        # Retry the (expensive, audited) rollback pass with a back-off, not every
        # interval; a changed Registry answer for our reference is tried at once.
        self._next_rollback = self._clock() + self._retry_after()
        if not self._not_ready_recorded:
            self._not_ready_recorded = True
            self._lifecycle(
                "serving_not_ready",
                None,
                reason="NO_HEALTHY_VERSION",
                detail="no candidate passed the gate and no previous version could be restored",
            )

    def _retry_after(self) -> float:
        return max(30.0, 10 * float(self.config.serve.refresh_interval))

    # ------------------------------------------------------------------ background loop
    def request_refresh(self) -> None:
        """SIGHUP: refresh now (signal-safe: only sets an event)."""
        self._wake.set()

    def start_refresh_loop(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="trustload-refresh", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        interval = max(0.05, float(self.config.serve.refresh_interval))
        while not self._stop.is_set():
            self._wake.wait(timeout=interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.refresh_safely()

    def refresh_safely(self) -> None:
        """One refresh cycle as the loop runs it: an unexpected error withdraws the model."""
        try:
            self.refresh()
        except Exception as exc:  # fail closed: we can no longer vouch for the model
            self.metrics.refresh_failures.labels(reason="internal").inc()
            log.exception("refresh failed: %s", exc)
            self._withdraw_on_error(exc)

    def _withdraw_on_error(self, exc: Exception) -> None:
        """An unexpected error inside a refresh cycle: stop serving until a full cycle
        (gate included) succeeds again. Never keep serving on an unchecked path."""
        with self._cycle:
            model = self._model
            self._publish(None)
            self._last_contact = None
            if model is not None:
                self._lifecycle(
                    "serving_withdrawn",
                    model.record,
                    reasons=["INTERNAL_ERROR"],
                    detail=f"refresh failed: {type(exc).__name__}: {exc}",
                )

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        model = self._model
        self._publish(None)
        if model is not None:
            self._lifecycle("serving_stop", model.record)
        if self._client is not None:
            self._client.close()
