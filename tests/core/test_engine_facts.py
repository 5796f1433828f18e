"""The engine over digests the cache computed while downloading (``layout.known``).

A fact stands in for measuring a file only while it describes that file, and it is
compared with the pin and the signature like a fresh measurement: a wrong fact is
DIGEST_MISMATCH and SIGNATURE_INVALID, never a permit.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from tests.core.test_engine import facts_for
from trustload.decision import ReasonCode as R
from trustload.digests import ModelLayout
from trustload.engine import decide
from trustload.policy import PolicyEngine, default_policy_dir
from trustload.streamhash import Digester, KnownDigests


@pytest.fixture(scope="module")
def policy() -> PolicyEngine:
    return PolicyEngine.from_dir(default_policy_dir())


def fact_for(layout: ModelLayout) -> KnownDigests:
    ((_rel, where),) = layout.files
    dig = Digester(None)
    dig.update(where.read_bytes())
    return dig.fact(where, os.lstat(where))


def test_true_fact_permits_without_reading(signed, policy, monkeypatch):
    layout = ModelLayout.from_path(signed.model)
    layout = replace(layout, known=(fact_for(layout),))
    opened: list[str] = []
    real_open = os.open

    def counting_open(path, *args, **kw):  # type: ignore[no-untyped-def]
        opened.append(os.fspath(path))
        return real_open(path, *args, **kw)

    monkeypatch.setattr(os, "open", counting_open)
    decision = decide(facts_for(signed, policy, layout=layout), policy)
    assert decision.permitted, decision.to_json()
    assert str(signed.model) not in opened
    # Without the fact the engine does read the file (so the counter sees reads).
    assert decide(facts_for(signed, policy), policy).permitted
    assert str(signed.model) in opened


def test_wrong_fact_is_digest_mismatch_and_signature_invalid(signed, policy):
    layout = ModelLayout.from_path(signed.model)
    lie = replace(fact_for(layout), sha256="0" * 64)
    decision = decide(facts_for(signed, policy, layout=replace(layout, known=(lie,))), policy)
    assert not decision.permitted
    assert {R.DIGEST_MISMATCH, R.SIGNATURE_INVALID} <= set(decision.reasons)


def test_stale_fact_is_ignored_and_the_bytes_decide(signed, policy, tmp_path):
    """A fact for the signed bytes, held while the file was changed underneath it."""
    model = tmp_path / "model.onnx"
    model.write_bytes(signed.model.read_bytes())
    layout = ModelLayout.from_path(model)
    fact = fact_for(layout)
    data = bytearray(model.read_bytes())
    data[-1] ^= 1
    with model.open("r+b") as fh:
        fh.write(bytes(data))
    decision = decide(facts_for(signed, policy, layout=replace(layout, known=(fact,))), policy)
    assert not decision.permitted
    assert {R.DIGEST_MISMATCH, R.SIGNATURE_INVALID} <= set(decision.reasons)
