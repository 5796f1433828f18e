"""Parser attacks: hostile bytes in the signature bundle and the attestation, most of them
*correctly signed by the trusted key* so that only strict parsing can stop them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.helpers import Arena, Gate, assert_denied
from tests.attacks.hostile import Mitm
from tests.crypto.helpers import envelope_json, load_key
from trustload.client.transport import RegistryHTTPError
from trustload.decision import ReasonCode
from trustload.formats.dsse import IN_TOTO_PAYLOAD_TYPE


def signed_envelope(
    arena: Arena, payload: bytes, ptype: str = IN_TOTO_PAYLOAD_TYPE
) -> dict[str, Any]:
    return envelope_json(load_key(arena.env.signing_key), payload, ptype)


def honest(arena: Arena) -> tuple[Path, dict[str, Any], bytes, dict[str, Any], bytes]:
    """A model and its honest evidence: (path, bundle, bundle payload, attestation, payload)."""
    path = arena.model_file()
    signed = arena.sign(path)
    bundle = json.loads(signed.signature)
    att = json.loads(signed.attestation)
    return (
        path,
        bundle,
        base64.b64decode(bundle["dsseEnvelope"]["payload"]),
        att,
        base64.b64decode(att["payload"]),
    )


def with_bundle_payload(bundle: dict[str, Any], envelope: dict[str, Any]) -> bytes:
    return json.dumps({**bundle, "dsseEnvelope": envelope}).encode()


def run_with(
    arena: Arena, gate: Gate, *, signature: bytes | None = None, attestation: bytes | None = None
) -> Any:
    path, bundle, _, att, _ = honest(arena)
    name = arena.name()
    arena.publish(
        name,
        "1",
        path,
        signature=signature if signature is not None else json.dumps(bundle).encode(),
        attestation=attestation if attestation is not None else json.dumps(att).encode(),
    )
    return gate.run(f"{name}@production")


def test_parsers_duplicate_keys_in_signed_model_statement(arena: Arena, gate: Gate) -> None:
    """The signed model statement carries `subject` twice (validly signed): which one counts?

    Attack: parser / duplicate keys
    """
    path, bundle, payload, att, _ = honest(arena)
    doubled = payload.replace(b'"subject"', b'"subject": [], "subject"', 1)
    assert doubled != payload
    name = arena.name()
    arena.publish(
        name, "1", path, signature=with_bundle_payload(bundle, signed_envelope(arena, doubled))
    )
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir
    )


def test_parsers_duplicate_keys_in_signed_attestation(arena: Arena, gate: Gate) -> None:
    """The signed provenance statement carries `_type` twice (validly signed).

    Attack: parser / duplicate keys
    """
    _, _, _, _, payload = honest(arena)
    doubled = payload.replace(
        b'"_type"', b'"_type": "https://in-toto.io/Statement/v0.1", "_type"', 1
    )
    att = json.dumps(signed_envelope(arena, doubled)).encode()
    assert_denied(
        run_with(arena, gate, attestation=att),
        ReasonCode.ATTESTATION_INVALID,
        cache_dir=gate.cache_dir,
    )


def test_parsers_duplicate_envelope_in_bundle(arena: Arena, gate: Gate) -> None:
    """The bundle JSON holds `dsseEnvelope` twice: a genuine one and a forged one.

    Attack: parser / duplicate keys
    """
    _, bundle, _, _, _ = honest(arena)
    genuine = json.dumps(bundle["dsseEnvelope"])
    forged = json.dumps({**bundle["dsseEnvelope"], "payload": base64.b64encode(b"{}").decode()})
    text = json.dumps(bundle).replace(
        '"dsseEnvelope": ' + genuine, '"dsseEnvelope": ' + genuine + ', "dsseEnvelope": ' + forged
    )
    assert text.count("dsseEnvelope") == 2
    assert_denied(
        run_with(arena, gate, signature=text.encode()),
        ReasonCode.SIGNATURE_INVALID,
        cache_dir=gate.cache_dir,
    )


def test_parsers_dsse_payload_differs_from_statement_shown(arena: Arena, gate: Gate) -> None:
    """A benign decoded `statement` shown beside a signed payload about other bytes.

    Attack: parser / confused deputy
    """
    path, bundle, _, att, payload = honest(arena)
    other = json.loads(payload)
    shown = json.loads(payload)
    other["subject"][0]["digest"]["sha256"] = "0" * 64  # what was really signed
    envelope = signed_envelope(arena, json.dumps(other).encode())
    envelope["statement"] = shown  # what a careless verifier would read
    name = arena.name()
    arena.publish(
        name,
        "1",
        path,
        signature=json.dumps(bundle).encode(),
        attestation=json.dumps(envelope).encode(),
    )
    assert_denied(
        gate.run(f"{name}@production"),
        ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_parsers_wrong_payload_type_in_bundle(arena: Arena, gate: Gate) -> None:
    """The model statement signed under payloadType `application/json`, not in-toto.

    Attack: parser / type confusion
    """
    path, bundle, payload, _, _ = honest(arena)
    name = arena.name()
    env = signed_envelope(arena, payload, "application/json")
    arena.publish(name, "1", path, signature=with_bundle_payload(bundle, env))
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir
    )


def test_parsers_wrong_payload_type_in_attestation(arena: Arena, gate: Gate) -> None:
    """The provenance signed under payloadType `text/plain`.

    Attack: parser / type confusion
    """
    _, _, _, _, payload = honest(arena)
    att = json.dumps(signed_envelope(arena, payload, "text/plain")).encode()
    assert_denied(
        run_with(arena, gate, attestation=att),
        ReasonCode.ATTESTATION_INVALID,
        cache_dir=gate.cache_dir,
    )


def test_parsers_huge_attestation(arena: Arena, gate: Gate) -> None:
    """A 17 MiB attestation (padding field), beyond the evidence size bound, named by a
    hostile Registry (the real one refuses to publish it: see the next test).

    Attack: parser / resource exhaustion
    """
    path, _, _, att, _ = honest(arena)
    att["padding"] = "x" * (17 * 1024 * 1024)
    huge = json.dumps(att).encode()
    hexdigest = hashlib.sha256(huge).hexdigest()
    name = arena.name()
    arena.publish(name, "1", path)
    with Mitm(arena.reg) as mitm:
        mitm.on_record = lambda doc: {**doc, "attestation_digest": f"sha256:{hexdigest}"}
        mitm.replay[f"/v1/blobs/sha256/{hexdigest}"] = huge
        result = gate.run(f"{name}@production", gate.via(mitm.url))
    assert_denied(result, ReasonCode.DIGEST_MISMATCH, cache_dir=gate.cache_dir)


def test_parsers_huge_attestation_refused_at_publish(arena: Arena, gate: Gate) -> None:
    """A publisher names a 17 MiB attestation blob (uploaded) in its version.

    Attack: parser / resource exhaustion
    """
    path, _, _, att, _ = honest(arena)
    att["padding"] = "x" * (17 * 1024 * 1024)
    name = arena.name()
    with pytest.raises(RegistryHTTPError) as err:
        arena.publish(name, "1", path, attestation=json.dumps(att).encode())
    assert err.value.status == 400 and err.value.registry_code == "BAD_REQUEST"
    assert "attestation_digest" in err.value.message and "exceeds" in err.value.message
    assert_denied(gate.run(f"{name}@production"), ReasonCode.NOT_FOUND, cache_dir=gate.cache_dir)


def test_parsers_deeply_nested_signed_attestation(arena: Arena, gate: Gate) -> None:
    """A validly signed provenance whose predicate nests 100 000 levels deep.

    Attack: parser / resource exhaustion
    """
    _, _, _, _, payload = honest(arena)
    doc = json.loads(payload)
    depth = 100_000
    nested = b"[" * depth + b"]" * depth
    body = json.dumps({**doc, "predicate": "@@"}).encode().replace(b'"@@"', nested)
    att = json.dumps(signed_envelope(arena, body)).encode()
    assert_denied(
        run_with(arena, gate, attestation=att),
        ReasonCode.ATTESTATION_INVALID,
        cache_dir=gate.cache_dir,
    )


def test_parsers_deeply_nested_bundle(arena: Arena, gate: Gate) -> None:
    """A signature bundle nesting 100 000 levels deep in an extra field.

    Attack: parser / resource exhaustion
    """
    _, bundle, _, _, _ = honest(arena)
    text = (
        json.dumps({**bundle, "x": "@@"}).encode().replace(b'"@@"', b"[" * 100_000 + b"]" * 100_000)
    )
    assert_denied(
        run_with(arena, gate, signature=text),
        ReasonCode.SIGNATURE_INVALID,
        cache_dir=gate.cache_dir,
    )


def test_parsers_non_utf8_signed_attestation(arena: Arena, gate: Gate) -> None:
    """A validly signed provenance payload that is not UTF-8.

    Attack: parser / encoding
    """
    _, _, _, _, payload = honest(arena)
    bad = payload.replace(b'"predicateType"', b'"predicate\xffType"', 1)
    att = json.dumps(signed_envelope(arena, bad)).encode()
    assert_denied(
        run_with(arena, gate, attestation=att),
        ReasonCode.ATTESTATION_INVALID,
        cache_dir=gate.cache_dir,
    )


def test_parsers_non_utf8_bundle(arena: Arena, gate: Gate) -> None:
    """A signature bundle with invalid UTF-8 bytes in it.

    Attack: parser / encoding
    """
    _, bundle, _, _, _ = honest(arena)
    raw = json.dumps(bundle).encode().replace(b'"mediaType"', b'"media\xc3\x28Type"', 1)
    assert_denied(
        run_with(arena, gate, signature=raw), ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir
    )


def test_parsers_truncated_bundle(arena: Arena, gate: Gate) -> None:
    """A signature bundle cut in half (a truncated upload or download).

    Attack: parser / truncation
    """
    _, bundle, _, _, _ = honest(arena)
    raw = json.dumps(bundle).encode()
    assert_denied(
        run_with(arena, gate, signature=raw[: len(raw) // 2]),
        ReasonCode.SIGNATURE_INVALID,
        cache_dir=gate.cache_dir,
    )


def test_parsers_garbage_attestation(arena: Arena, gate: Gate) -> None:
    """Random bytes where the attestation should be.

    Attack: parser / truncation
    """
    assert_denied(
        run_with(arena, gate, attestation=os.urandom(4096)),
        ReasonCode.ATTESTATION_INVALID,
        cache_dir=gate.cache_dir,
    )


def test_parsers_truncated_pem_certificate_in_bundle(arena: Arena, gate: Gate) -> None:
    """The bundle's signing certificate is a truncated PEM instead of DER bytes.

    Attack: parser / truncation
    """
    from tests.crypto.helpers import make_ca, make_leaf, pem

    work = arena.workdir()
    ca_key, ca = make_ca(work)
    _leaf_key, leaf = make_leaf(ca_key, ca)
    _, bundle, _, _, _ = honest(arena)
    cut = pem(leaf)[:200]
    bundle["verificationMaterial"] = {
        "x509CertificateChain": {"certificates": [{"rawBytes": base64.b64encode(cut).decode()}]},
        "tlogEntries": [],
    }
    assert_denied(
        run_with(arena, gate, signature=json.dumps(bundle).encode()),
        ReasonCode.SIGNATURE_INVALID,
        cache_dir=gate.cache_dir,
    )
