"""The Rego input document (R4): built from facts, with every field always present.

regopy treats a missing field as undefined, and ``not input.x`` is then *true*: a
forgotten field could silently satisfy a negated rule. So :func:`build_input`
emits the full shape every time, using ``null`` (never an omitted key) for what is
unknown, ``[]`` for empty lists, and RFC 3339 timestamps in UTC with a ``+00:00``
offset (regopy's ``time.parse_rfc3339_ns`` rejects a trailing ``Z``). The schema is
documented with a full example in ``docs/policy.md``; :data:`INPUT_SCHEMA_VERSION`
changes whenever a field is added.

Pure: no I/O, no clock; the caller passes ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from trustload.decision import CheckResult
from trustload.facts import Requester, VersionRecord

INPUT_SCHEMA_VERSION = 1
MODE_GATE = "gate"
MODE_FILES = "files"


def rego_time(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with ``+00:00`` (naive datetimes are taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class AttestationView:
    """What the policy may see of an attestation (filled from H1's ``AttestationFacts``)."""

    subjects: tuple[str, ...] = ()  # "sha256:<hex>" digests of the statement's subjects
    predicate_type: str | None = None
    git_sha: str | None = None
    container_digest: str | None = None
    dataset_snapshot: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    signer: str | None = None


@dataclass(frozen=True)
class PolicyInputs:
    """Everything the input document is built from (already measured and checked)."""

    mode: str  # MODE_GATE (a Registry record) or MODE_FILES (verify-files)
    now: datetime
    environment: str
    allowed_stages: tuple[str, ...]
    runtime_policy_digest: str | None
    artifact_digest: str | None
    artifact_kind: str | None
    signature_present: bool
    signature_valid: bool
    signer: str | None = None
    attestation_required: bool = True
    attestation_present: bool = False
    attestation_valid: bool = False
    attestation: AttestationView | None = None
    record: VersionRecord | None = None
    requester: Requester | None = None
    checks: Sequence[CheckResult] = field(default_factory=tuple)


def _subject(view: AttestationView | None, artifact_digest: str | None) -> str | None:
    """The subject that names the artifact if one does, else the first one, else null."""
    if view is None or not view.subjects:
        return None
    if artifact_digest is not None and artifact_digest in view.subjects:
        return artifact_digest
    return view.subjects[0]


def _resource(record: VersionRecord | None) -> dict[str, Any]:
    if record is None:
        return {
            "name": None,
            "version": None,
            "stage": None,
            "revoked": None,
            "quarantined": None,
            "tenant": None,
            "domain": None,
            "purpose": {"allowed": []},
            "lifecycle": {"revalidate_by": None},
            "policy_digest": None,
            "artifact_digest": None,
            "git_sha": None,
            "container_digest": None,
            "dataset_snapshot": None,
            "alias": None,
            "alias_revision": None,
            "change_ticket": None,
        }
    card = record.card
    return {
        "name": record.name,
        "version": record.version,
        "stage": record.stage,
        "revoked": bool(record.revoked),
        "quarantined": bool(record.quarantined),
        "tenant": card.tenant_id,
        "domain": card.domain,
        "purpose": {"allowed": list(card.purposes_allowed)},
        "lifecycle": {"revalidate_by": rego_time(card.revalidate_by)},
        "policy_digest": record.policy_digest,
        "artifact_digest": record.artifact_digest,
        "git_sha": record.git_sha,
        "container_digest": record.container_digest,
        "dataset_snapshot": record.dataset_snapshot,
        "alias": record.alias,
        "alias_revision": record.alias_revision,
        "change_ticket": record.change_ticket,
    }


def _requester(requester: Requester | None) -> dict[str, Any]:
    if requester is None:
        return {"tenant": None, "domain": None, "purpose": [], "subject": None, "caller": None}
    return {
        "tenant": requester.tenant_id,
        "domain": requester.domain,
        "purpose": list(requester.purposes),
        "subject": requester.subject,
        "caller": requester.caller,
    }


def build_input(p: PolicyInputs) -> dict[str, Any]:
    """The complete input document for ``data.registry.download``."""
    view = p.attestation
    checks: dict[str, Any] = {}
    for c in p.checks:
        prior = checks.get(c.name)
        ok = c.ok and (prior is None or prior["ok"])
        code = prior["code"] if prior is not None and not prior["ok"] else c.code
        checks[c.name] = {"ok": ok, "code": None if ok or code is None else str(code)}
    return {
        "schema": INPUT_SCHEMA_VERSION,
        "mode": p.mode,
        "now": rego_time(p.now),
        "environment": p.environment,
        "allowed_stages": list(p.allowed_stages),
        "resource": _resource(p.record),
        "artifact": {"sha256": p.artifact_digest, "kind": p.artifact_kind},
        "signature": {
            "present": bool(p.signature_present),
            "valid": bool(p.signature_valid),
            "signer": p.signer,
        },
        "attestation": {
            "required": bool(p.attestation_required),
            "present": bool(p.attestation_present),
            "valid": bool(p.attestation_valid),
            "subject": _subject(view, p.artifact_digest),
            "subjects": [] if view is None else list(view.subjects),
            "predicate_type": None if view is None else view.predicate_type,
            "git_sha": None if view is None else view.git_sha,
            "container_digest": None if view is None else view.container_digest,
            "dataset_snapshot": None if view is None else view.dataset_snapshot,
            "not_before": None if view is None else rego_time(view.not_before),
            "not_after": None if view is None else rego_time(view.not_after),
            "signer": None if view is None else view.signer,
        },
        "runtime": {"policy_digest": p.runtime_policy_digest},
        "requester": _requester(p.requester),
        "checks": checks,
    }
