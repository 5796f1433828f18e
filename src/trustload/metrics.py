"""Prometheus metrics for the serving runtime (R7).

Every runtime owns its own :class:`prometheus_client.CollectorRegistry`, never the
process-global default one: two runtimes in one test process (or a runtime and a
library that also registers metrics) must not collide, and ``/metrics`` must expose
exactly what this runtime measured. Labels carry codes, event names, check names and
model identity only: never tokens, subjects or request data (no PII, R7).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# Verification checks run from well under a millisecond (a stage compare) to seconds
# (hashing gigabytes); buckets are in seconds, Prometheus' convention.
_CHECK_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)


class Metrics:
    """The runtime's metric families, registered on a private registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            "trustload_decisions",
            "Gate and lifecycle decisions by event, decision and reason code.",
            ["event", "decision", "reason"],
            registry=self.registry,
        )
        self.check_seconds = Histogram(
            "trustload_check_duration_seconds",
            "Verification latency per check.",
            ["check"],
            buckets=_CHECK_BUCKETS,
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "trustload_decision_duration_seconds",
            "Whole gate decision latency.",
            ["event"],
            registry=self.registry,
        )
        self.model_info = Info(
            "trustload_loaded_model",
            "The model version being served (empty while not ready).",
            registry=self.registry,
        )
        self.ready = Gauge(
            "trustload_ready",
            "1 while a verified model is loaded and served.",
            registry=self.registry,
        )
        self.refresh_failures = Counter(
            "trustload_refresh_failures",
            "Refresh cycles that could not reach the Registry or failed.",
            ["reason"],
            registry=self.registry,
        )
        self.swaps = Counter(
            "trustload_model_swaps",
            "Atomic swaps to another model version.",
            registry=self.registry,
        )
        self.inference_requests = Counter(
            "trustload_inference_requests",
            "Inference requests by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self._last_contact: float | None = None
        self.registry_staleness = Gauge(
            "trustload_registry_contact_age_seconds",
            "Seconds since the last successful Registry contact (-1 before the first).",
            registry=self.registry,
        )
        self.registry_staleness.set_function(self._staleness)

    def _staleness(self) -> float:
        if self._last_contact is None:
            return -1.0
        return max(0.0, self._clock() - self._last_contact)

    def registry_contact(self, at: float | None = None) -> None:
        """Note a successful Registry answer (monotonic clock)."""
        self._last_contact = self._clock() if at is None else at

    def observe_decision(self, doc: dict[str, Any]) -> None:
        """Count one decision document (INTERFACE.md shape) and its check latencies."""
        event = str(doc.get("event", "unknown"))
        decision = str(doc.get("decision", "unknown"))
        reasons = [str(r) for r in doc.get("reasons") or []] or ["none"]
        for reason in reasons:
            self.decisions.labels(event=event, decision=decision, reason=reason).inc()
        for check in doc.get("checks") or []:
            if isinstance(check, dict) and "name" in check:
                ms = float(check.get("ms") or 0.0)
                self.check_seconds.labels(check=str(check["name"])).observe(ms / 1000.0)
        latency = doc.get("latency_ms")
        if isinstance(latency, int | float):
            self.decision_seconds.labels(event=event).observe(float(latency) / 1000.0)

    def set_loaded(self, model: str | None, version: str | None, digest: str | None) -> None:
        """Publish what is being served; ``None`` clears it (not ready)."""
        if model is None:
            self.model_info.info({"model": "", "version": "", "artifact_digest": ""})
            self.ready.set(0)
        else:
            self.model_info.info(
                {"model": model, "version": version or "", "artifact_digest": digest or ""}
            )
            self.ready.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
