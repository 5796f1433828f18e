"""Property tests: every parser and verifier either returns or raises a typed denial.

Never a traceback, never a pass on arbitrary input.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.crypto.helpers import NOW
from trustload.checks.attestation import check_attestation
from trustload.checks.signature import check_model_signature
from trustload.decision import ReasonCode
from trustload.digests import ModelLayout
from trustload.errors import TrustloadError
from trustload.facts import Expectations, TrustAnchors
from trustload.formats.dsse import parse_envelope, parse_envelope_obj
from trustload.formats.intoto import parse_statement, parse_statement_obj
from trustload.formats.jsonstrict import loads_strict
from trustload.formats.oms import parse_manifest
from trustload.formats.slsa import extract_facts

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CODE = ReasonCode.ATTESTATION_INVALID

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "payload": st.text(max_size=40) | st.integers(),
        "payloadType": st.text(max_size=40) | st.none(),
        "signatures": st.lists(
            st.dictionaries(st.sampled_from(["sig", "keyid", "x"]), st.text(max_size=30)),
            max_size=3,
        ),
    },
)
statement_like = st.fixed_dictionaries(
    {
        "_type": st.sampled_from(
            ["https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1", "x"]
        ),
        "predicateType": st.sampled_from(
            [
                "https://model_signing/signature/v1.0",
                "https://slsa.dev/provenance/v1",
                "https://slsa.dev/provenance/v0.2",
            ]
        ),
    },
    optional={
        "subject": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.text(max_size=10),
                    "digest": st.dictionaries(
                        st.sampled_from(["sha256", "sha512", "gitCommit", "other"]),
                        st.text("0123456789abcdef", max_size=70),
                    ),
                },
            ),
            max_size=3,
        ),
        "predicate": json_values,
    },
)


@SETTINGS
@given(st.binary(max_size=400))
def test_loads_strict_bytes(data: bytes) -> None:
    try:
        loads_strict(data, code=CODE)
    except TrustloadError as exc:
        assert exc.code == CODE


@SETTINGS
@given(json_values)
def test_loads_strict_round_trips_valid_json(value: Any) -> None:
    assert loads_strict(json.dumps(value).encode(), code=CODE) == value


@SETTINGS
@given(st.binary(max_size=300) | envelope_like.map(lambda d: json.dumps(d).encode()))
def test_envelope_parser(data: bytes) -> None:
    try:
        env = parse_envelope(data, code=CODE)
        assert env.signatures
    except TrustloadError as exc:
        assert exc.code == CODE


@SETTINGS
@given(json_values | envelope_like)
def test_envelope_obj_parser(obj: Any) -> None:
    try:
        parse_envelope_obj(obj, code=CODE)
    except TrustloadError as exc:
        assert exc.code == CODE


@SETTINGS
@given(statement_like | json_values)
def test_statement_manifest_and_facts(obj: Any) -> None:
    try:
        statement = parse_statement_obj(obj, code=CODE)
    except TrustloadError as exc:
        assert exc.code == CODE
        return
    try:
        parse_manifest(statement)
    except TrustloadError as exc:
        assert exc.code == ReasonCode.SIGNATURE_INVALID
    try:
        extract_facts(statement.predicate_type, statement.predicate, code=CODE)
    except TrustloadError as exc:
        assert exc.code == CODE


@SETTINGS
@given(st.binary(max_size=300))
def test_statement_bytes(data: bytes) -> None:
    try:
        parse_statement(data, code=CODE)
    except TrustloadError as exc:
        assert exc.code == CODE


@SETTINGS
@given(
    st.binary(max_size=500)
    | json_values.map(lambda v: json.dumps(v).encode())
    | envelope_like.map(
        lambda d: json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "verificationMaterial": {"publicKey": {}},
                "dsseEnvelope": d,
            }
        ).encode()
    )
)
def test_signature_check_never_passes_garbage(tmp_path_factory: Any, data: bytes) -> None:
    from trustload.crypto.keys import generate_keypair

    d: Path = tmp_path_factory.mktemp("prop")
    (d / "m.bin").write_bytes(b"model")
    _k, pub = generate_keypair(d / "k")
    out = check_model_signature(
        ModelLayout.from_path(d / "m.bin"),
        data,
        TrustAnchors(public_keys=(pub.read_bytes(),)),
        now=NOW,
    )
    assert not out.result.ok
    assert out.result.code in (ReasonCode.SIGNATURE_INVALID, ReasonCode.SIGNATURE_MISSING)


@SETTINGS
@given(st.binary(max_size=500) | envelope_like.map(lambda d: json.dumps(d).encode()))
def test_attestation_check_never_passes_garbage(data: bytes) -> None:
    results, facts = check_attestation(
        data,
        TrustAnchors(),
        artifact_digest="sha256:" + "a" * 64,
        expect=Expectations(),
        now=NOW,
        clock_skew=timedelta(minutes=1),
    )
    assert facts is None
    assert [r.code for r in results] in (
        [ReasonCode.ATTESTATION_INVALID],
        [ReasonCode.ATTESTATION_MISSING],
    )


@SETTINGS
@given(statement_like | json_values)
def test_signed_arbitrary_statements_never_pass(tmp_path_factory: Any, obj: Any) -> None:
    """Even signed by the trusted key, an arbitrary statement never verifies a model."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.crypto.helpers import envelope_json
    from trustload.crypto.keys import public_pem

    d: Path = tmp_path_factory.mktemp("signed")
    (d / "m.bin").write_bytes(b"model")
    key = ec.generate_private_key(ec.SECP256R1())
    bundle = json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
            "dsseEnvelope": envelope_json(key, json.dumps(obj).encode()),
        }
    ).encode()
    anchors = TrustAnchors(public_keys=(public_pem(key.public_key()),))
    out = check_model_signature(ModelLayout.from_path(d / "m.bin"), bundle, anchors, now=NOW)
    assert not out.result.ok
    assert out.result.code == ReasonCode.SIGNATURE_INVALID
