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
from typing import Any

from trustload.decision import CheckResult, Decision, Event, ReasonCode, utc_now
from trustload.digests import parse_digest
from trustload.errors import TrustloadError
from trustload.facts import ModelRef, Requester, VersionRecord
from trustload.serve.active import ActiveModel
from trustload.serve.candidate import DenialMemo, GateFn, RuntimeCore, WarmupHook
from trustload.state import forget_healthy, healthy_versions

__all__ = ["GateFn", "ServingRuntime", "StartupDenied", "WarmupHook"]

log = logging.getLogger(__name__)


class StartupDenied(Exception):
    """Start-up was denied and no previous healthy version could be rolled back to."""

    def __init__(self, decision: dict[str, Any]) -> None:
        super().__init__(", ".join(decision.get("reasons") or []) or "denied")
        self.decision = decision


class ServingRuntime(RuntimeCore):
    """One served model reference (``name@alias`` or ``name@version``) and its lifecycle."""

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
        from trustload.serve.offline import CachedRecordClient, cached_start

        started = time.perf_counter()
        gate = self.config.gate
        usable = cached_start(
            gate.state_dir, self.ref, self.environment, gate.max_staleness, utc_now()
        )
        if isinstance(usable, str):
            decision = Decision(
                event=Event.STARTUP_DENY,
                checks=[
                    CheckResult.failed("offline_start", ReasonCode.REGISTRY_UNAVAILABLE, usable)
                ],
                requested=str(self.ref),
                model=self.ref.name,
                environment=self.environment,
            )
            self._finish(decision, Event.STARTUP_PERMIT, started)
            return None
        client = CachedRecordClient(self.config.registry, usable.record)
        try:
            offline = (client, usable.why)
            active, doc = self._attempt(self.ref, Event.STARTUP_PERMIT, offline=offline)
        finally:
            client.close()
        if active is None:
            return None
        # Freshness keeps counting from the record's real age, not from now.
        self._last_contact = self._clock() - usable.age
        self.metrics.registry_contact(self._last_contact)
        self._accept(active, advance_state=True, save_record=False)
        return doc

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
        key = DenialMemo.key(target)
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
