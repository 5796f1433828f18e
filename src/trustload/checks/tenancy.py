"""R1.5 / R2.9 (ABAC): the caller's tenant, domain and purpose match the model card.

* ``tenant``: the token's tenant equals the card's ``tenant_id``; when the token
  carries a domain it must equal the card's ``domain`` (TENANT_MISMATCH). No
  requester identity at all fails closed.
* ``purpose``: at least one of the token's purposes is in ``purpose.allowed``
  (PURPOSE_NOT_ALLOWED).
"""

from __future__ import annotations

import hmac

from trustload.decision import CheckResult, ReasonCode
from trustload.facts import ModelCard, Requester


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def check_tenant(requester: Requester | None, card: ModelCard) -> CheckResult:
    """Pass iff the requester's tenant (and domain, when it has one) match the card."""
    if requester is None:
        return CheckResult.failed(
            "tenant", ReasonCode.TENANT_MISMATCH, "no requester identity to match the model card"
        )
    if not requester.tenant_id or not _same(requester.tenant_id, card.tenant_id):
        return CheckResult.failed(
            "tenant",
            ReasonCode.TENANT_MISMATCH,
            f"caller tenant {requester.tenant_id!r} != model tenant {card.tenant_id!r}",
        )
    if requester.domain is not None and requester.domain != card.domain:
        return CheckResult.failed(
            "tenant",
            ReasonCode.TENANT_MISMATCH,
            f"caller domain {requester.domain!r} != model domain {card.domain!r}",
        )
    return CheckResult.passed("tenant", f"tenant {card.tenant_id}")


def check_purpose(requester: Requester | None, card: ModelCard) -> CheckResult:
    """Pass iff some requester purpose is among the card's allowed purposes."""
    purposes = () if requester is None else requester.purposes
    allowed = set(card.purposes_allowed)
    matching = sorted(p for p in purposes if p in allowed)
    if matching:
        return CheckResult.passed("purpose", f"purpose {matching[0]} allowed")
    return CheckResult.failed(
        "purpose",
        ReasonCode.PURPOSE_NOT_ALLOWED,
        f"caller purposes {sorted(purposes)} not in allowed {sorted(allowed)}",
    )
