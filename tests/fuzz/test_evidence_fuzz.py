"""Mutation fuzzing of *genuine* evidence: a correctly signed bundle and attestation with
random edits must never verify (the only mutations that may pass are no-ops of the signed
bytes, e.g. whitespace outside the signed payload), and nothing may raise untyped errors."""

from __future__ import annotations

import base64
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import FUZZ, mutations
from trustload.checks.attestation import check_attestation
from trustload.checks.signature import check_model_signature
from trustload.crypto.keys import generate_keypair
from trustload.decision import ReasonCode, utc_now
from trustload.digests import ModelLayout, measure
from trustload.facts import Expectations, TrustAnchors
from trustload.signing import attest_bytes, sign_layout_bundle

GIT, CONTAINER, DATASET = "1" * 40, "sha256:" + "c" * 64, "ds"


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, bytes, bytes, str]:
    d = tmp_path_factory.mktemp("genuine")
    model = d / "model.bin"
    model.write_bytes(os.urandom(2048))
    key, pub = generate_keypair(d / "k")
    digest = measure(model).digest
    bundle = sign_layout_bundle(ModelLayout.from_path(model), key)
    att = attest_bytes(
        subject_name="model.bin",
        artifact_digest=digest,
        key_path=key,
        git_sha=GIT,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
    )
    return model, pub.read_bytes(), bundle, att, digest


def signed_part(raw: bytes, path: tuple[str, ...]) -> tuple[bytes, bytes, str] | None:
    """(payload, signature, payloadType) the bytes really carry, or None if unparsable."""
    try:
        doc = json.loads(raw)
        for key in path:
            doc = doc[key]
        return (
            base64.b64decode(doc["payload"], validate=True),
            base64.b64decode(doc["signatures"][0]["sig"], validate=True),
            doc["payloadType"],
        )
    except Exception:
        return None


@FUZZ
@given(data=st.data())
def test_mutated_signature_bundle_never_verifies(genuine, data) -> None:  # type: ignore[no-untyped-def]
    model, pub, bundle, _, _ = genuine
    mutated = data.draw(mutations(bundle))
    out = check_model_signature(
        ModelLayout.from_path(model), mutated, TrustAnchors(public_keys=(pub,)), now=utc_now()
    )
    if out.result.ok:  # only a no-op of everything that is signed may pass
        assert signed_part(mutated, ("dsseEnvelope",)) == signed_part(bundle, ("dsseEnvelope",))
    else:
        assert out.result.code in (ReasonCode.SIGNATURE_INVALID, ReasonCode.SIGNATURE_MISSING)


@FUZZ
@given(data=st.data())
def test_mutated_attestation_never_verifies(genuine, data) -> None:  # type: ignore[no-untyped-def]
    _, pub, _, att, digest = genuine
    mutated = data.draw(mutations(att))
    results, _facts = check_attestation(
        mutated,
        TrustAnchors(public_keys=(pub,)),
        artifact_digest=digest,
        expect=Expectations(GIT, CONTAINER, DATASET),
        now=utc_now(),
        clock_skew=timedelta(minutes=1),
    )
    failed = [r for r in results if not r.ok]
    if not failed:
        assert signed_part(mutated, ()) == signed_part(att, ())
    else:
        assert all(r.code is not None for r in failed)


@FUZZ
@given(data=st.data())
def test_mutated_model_bytes_never_verify(genuine, data, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    model, pub, bundle, _, _ = genuine
    original = model.read_bytes()
    mutated = data.draw(mutations(original))
    if mutated == original:
        return
    copy = tmp_path_factory.mktemp("mut") / "model.bin"
    copy.write_bytes(mutated)
    out = check_model_signature(
        ModelLayout.from_path(copy), bundle, TrustAnchors(public_keys=(pub,)), now=utc_now()
    )
    assert not out.result.ok and out.result.code is ReasonCode.SIGNATURE_INVALID
