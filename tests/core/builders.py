"""Builders for typed facts used across the core and policy tests (plain data, no mocks)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from trustload.facts import ModelCard, Requester, TrustedState, VersionRecord

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
POLICY_X = "sha256:" + "1" * 64
POLICY_Y = "sha256:" + "2" * 64


def card(**changes: Any) -> ModelCard:
    base = ModelCard(
        tenant_id="A",
        domain="credit",
        purposes_allowed=("credit_scoring",),
        revalidate_by=NOW + timedelta(days=180),
        format="onnx",
    )
    return replace(base, **changes)


def record(**changes: Any) -> VersionRecord:
    base = VersionRecord(
        name="risk-default",
        version="3",
        stage="Approved",
        artifact_digest=DIGEST_A,
        artifact_size=10,
        kind="file",
        format="onnx",
        policy_digest=POLICY_X,
        git_sha="0123456789abcdef0123456789abcdef01234567",
        container_digest="sha256:" + "c" * 64,
        dataset_snapshot="snap-2026-11",
        revoked=False,
        quarantined=False,
        card=card(),
        alias="production",
        alias_revision=4,
    )
    return replace(base, **changes)


def requester(**changes: Any) -> Requester:
    base = Requester(
        subject="svc-risk",
        tenant_id="A",
        domain="credit",
        purposes=("credit_scoring",),
        caller="spiffe://example/ns/risk/sa/serving",
    )
    return replace(base, **changes)


def state(**changes: Any) -> TrustedState:
    base = TrustedState(
        model="risk-default",
        environment="prod",
        version="3",
        alias="production",
        alias_revision=4,
        artifact_digest=DIGEST_A,
    )
    return replace(base, **changes)
