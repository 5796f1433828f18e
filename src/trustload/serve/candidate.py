"""What a serving runtime serves and how a candidate gets there (R3, R5, R9).

The mechanics under the lifecycle rules of :mod:`trustload.serve.runtime`: the state
(the published model, the last Registry contact, freshness), one *attempt* (gate, load
the verified bytes, warm up, re-check the Registry beside whatever is serving), and
the atomic publish that swaps a ready model in by replacing one reference. Every
attempt is one decision in the hash-chained audit log and in the metrics; the
lifecycle (start-up, rollback, refresh, the background loop) decides *which*
candidate to attempt and lives in ``runtime``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
from trustload.facts import ModelRef, TrustedState, VersionRecord
from trustload.metrics import Metrics
from trustload.serve.active import ActiveModel
from trustload.serve.loader import LoadedModel, load_verified
from trustload.state import record_healthy, save_last_record, save_state

if TYPE_CHECKING:
    from trustload.client.api import RegistryClient
    from trustload.gate import GateResult

log = logging.getLogger(__name__)

WarmupHook = Callable[[VersionRecord], None]
GateFn = Callable[..., "GateResult"]


_TRANSIENT = frozenset(
    {ReasonCode.REGISTRY_UNAVAILABLE, ReasonCode.AUTH_FAILED, ReasonCode.TLS_POLICY}
)


@dataclass
class DenialMemo:
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


class RuntimeCore:
    """One served model reference (``name@alias`` or ``name@version``): its state, one
    attempt at a candidate, and the publish. The lifecycle is :class:`ServingRuntime`."""

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
        self._denied = DenialMemo()
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
