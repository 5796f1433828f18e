"""Signature-role confusion (issue 8, item 5): a DSSE envelope signature is ECDSA over
SHA-256(PAE(type, payload)) and a detached blob signature is ECDSA over SHA-256(file),
made with the same keys. Each must never count as the other."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.helpers import (
    Arena,
    Gate,
    assert_decision_denied,
    assert_denied,
    with_gate,
)
from tests.crypto.helpers import load_key
from tests.support.cli import run_cli as cli
from trustload.crypto.keys import generate_keypair, load_public_key_pem, sign_message
from trustload.decision import ReasonCode
from trustload.digests import measure
from trustload.engine import verify_files
from trustload.errors import UsageError
from trustload.formats.dsse import IN_TOTO_PAYLOAD_TYPE, bytes_parse_as_pae, pae
from trustload.formats.oms import Resource, build_statement
from trustload.gate import trust_anchors


def cli_decision(model: Path, signature: Path, pub: Path) -> tuple[int, dict[str, Any]]:
    proc = cli(
        "verify-files", str(model), "--signature", str(signature), "--key", str(pub), "--json"
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def trusted_envelope(arena: Arena) -> dict[str, Any]:
    """Any envelope the release key ever signed (here: an honest model's attestation)."""
    signed = arena.sign(arena.model_file())
    env: dict[str, Any] = json.loads(signed.attestation)
    return env


def message_bundle(pub_pem: bytes, signature: bytes, digest: bytes) -> bytes:
    """The same signature as a Sigstore bundle (v0.3, ``messageSignature``, key hint)."""
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "x"}, "tlogEntries": []},
            "messageSignature": {
                "messageDigest": {
                    "algorithm": "SHA2_256",
                    "digest": base64.b64encode(digest).decode(),
                },
                "signature": base64.b64encode(signature).decode(),
            },
        }
    ).encode()


@pytest.mark.parametrize("form", ["cosign-base64", "sigstore-bundle"])
def test_confusion_envelope_signature_as_blob_signature(
    arena: Arena, tmp_path: Path, form: str
) -> None:
    """An attacker lifts the signature of any envelope the release key signed and presents
    it as a detached blob signature of a file whose bytes are that envelope's PAE.

    Attack: signature / DSSE-blob confusion
    """
    env = trusted_envelope(arena)
    payload = base64.b64decode(env["payload"])
    sig = base64.b64decode(env["signatures"][0]["sig"])
    crafted = tmp_path / "model.bin"
    crafted.write_bytes(pae(env["payloadType"], payload))
    assert bytes_parse_as_pae(crafted.read_bytes())
    sig_file = tmp_path / "model.sig"
    if form == "cosign-base64":
        sig_file.write_bytes(base64.b64encode(sig))
    else:
        digest = bytes.fromhex(measure(crafted).digest.removeprefix("sha256:"))
        sig_file.write_bytes(message_bundle(arena.env.signing_pub.read_bytes(), sig, digest))
    # The signature really is valid ECDSA over SHA-256(file): only the rule refuses it.
    from trustload.crypto.verify import verify_key_message_signature

    key = load_public_key_pem(arena.env.signing_pub.read_bytes())
    digest = bytes.fromhex(measure(crafted).digest.removeprefix("sha256:"))
    assert verify_key_message_signature(key, sig, digest)

    decision = verify_files(crafted, signature=sig_file, public_keys=[arena.env.signing_pub])
    assert_decision_denied(decision, ReasonCode.SIGNATURE_INVALID)
    assert "DSSE" in next(c.detail for c in decision.checks if c.name == "signature")
    status, doc = cli_decision(crafted, sig_file, arena.env.signing_pub)
    assert status == 1 and doc["reasons"] == ["SIGNATURE_INVALID"], doc


def test_confusion_control_blob_signature_passes(arena: Arena, tmp_path: Path) -> None:
    """Control: an honest cosign-style blob signature (base64 ECDSA over SHA-256 of the file,
    as ``cosign sign-blob`` makes) still verifies, in both encodings."""
    model = tmp_path / "model.onnx"
    model.write_bytes(os.urandom(4096))
    sig = sign_message(load_key(arena.env.signing_key), model.read_bytes())
    b64 = tmp_path / "model.sig"
    b64.write_bytes(base64.b64encode(sig) + b"\n")
    status, doc = cli_decision(model, b64, arena.env.signing_pub)
    assert status == 0 and doc["decision"] == "permit", doc
    digest = bytes.fromhex(measure(model).digest.removeprefix("sha256:"))
    bundle = tmp_path / "model.sigstore.json"
    bundle.write_bytes(message_bundle(arena.env.signing_pub.read_bytes(), sig, digest))
    decision = verify_files(model, signature=bundle, public_keys=[arena.env.signing_pub])
    assert decision.permitted, decision.to_json()
    # A file that merely starts like a PAE but is not one is an ordinary blob.
    near = tmp_path / "near.bin"
    near.write_bytes(b"DSSEv1 3 abc 99 too short")
    assert not bytes_parse_as_pae(near.read_bytes())
    near_sig = tmp_path / "near.sig"
    near_sig.write_bytes(
        base64.b64encode(sign_message(load_key(arena.env.signing_key), near.read_bytes()))
    )
    assert verify_files(near, signature=near_sig, public_keys=[arena.env.signing_pub]).permitted


def test_confusion_blob_signature_as_envelope_signature(arena: Arena, tmp_path: Path) -> None:
    """The reverse: a signer's detached blob signature over a statement file is wrapped as
    the signature of a DSSE envelope carrying that statement as its payload.

    Attack: signature / DSSE-blob confusion
    """
    model = tmp_path / "model.onnx"
    model.write_bytes(os.urandom(4096))
    hexdigest = measure(model).digest.removeprefix("sha256:")
    statement = json.dumps(
        build_statement(model.name, "files", [Resource(model.name, None, None, hexdigest)])
    ).encode()
    blob_sig = sign_message(load_key(arena.env.signing_key), statement)
    envelope = {
        "payload": base64.b64encode(statement).decode(),
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "signatures": [{"keyid": "", "sig": base64.b64encode(blob_sig).decode()}],
    }
    sig_file = tmp_path / "model.sig"
    sig_file.write_text(json.dumps(envelope))
    decision = verify_files(model, signature=sig_file, public_keys=[arena.env.signing_pub])
    assert_decision_denied(decision, ReasonCode.SIGNATURE_INVALID)
    status, doc = cli_decision(model, sig_file, arena.env.signing_pub)
    assert status == 1 and doc["reasons"] == ["SIGNATURE_INVALID"], doc


# --------------------------------------------------------------- separate key roles


def _roles(arena: Arena, gate: Gate) -> tuple[Path, Any]:
    att_key, att_pub = generate_keypair(arena.workdir() / "attester")
    cfg = with_gate(gate.cfg, attestation_keys=[att_pub])
    return att_key, cfg


def test_confusion_role_control_separate_keys_permit(arena: Arena, gate: Gate) -> None:
    """Control: model signed by a trusted key, attestation by an attestation key: permitted."""
    att_key, cfg = _roles(arena, gate)
    path = arena.model_file()
    name = arena.name()
    arena.publish(name, "1", path, signed=arena.sign(path, att_key=att_key))
    result = gate.run(f"{name}@production", cfg)
    assert result.decision.permitted, result.decision.to_json()


def test_confusion_role_model_key_signs_attestation(arena: Arena, gate: Gate) -> None:
    """With ``attestation_keys`` configured, an attestation signed by the model-signing key
    (a role it no longer holds) is refused.

    Attack: signature / key-role confusion
    """
    _att_key, cfg = _roles(arena, gate)
    name = arena.good()  # attestation signed by the release (model) key
    assert_denied(
        gate.run(f"{name}@production", cfg),
        ReasonCode.ATTESTATION_INVALID,
        cache_dir=gate.cache_dir,
    )


def test_confusion_role_attestation_key_signs_model(arena: Arena, gate: Gate) -> None:
    """An attestation key signs the model itself: with roles apart it cannot.

    Attack: signature / key-role confusion
    """
    att_key, cfg = _roles(arena, gate)
    path = arena.model_file()
    name = arena.name()
    arena.publish(name, "1", path, signed=arena.sign(path, sig_key=att_key, att_key=att_key))
    assert_denied(
        gate.run(f"{name}@production", cfg), ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir
    )


def test_confusion_role_attestation_replayed_as_model_signature(arena: Arena, gate: Gate) -> None:
    """The model's genuine provenance attestation (by the attestation key) is offered as its
    signature: a generic in-toto statement naming the file would count, but with roles
    apart only a model key's signature does.

    Attack: signature / key-role confusion
    """
    att_key, cfg = _roles(arena, gate)
    path = arena.model_file()
    name = arena.name()
    signed = arena.sign(path, att_key=att_key)
    arena.publish(name, "1", path, signed=signed, signature=signed.attestation)
    result = assert_denied(
        gate.run(f"{name}@production", cfg), ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir
    )
    assert next(c for c in result.decision.checks if c.name == "attestation").ok


def test_confusion_role_shared_key_is_config_error(arena: Arena, gate: Gate) -> None:
    """One key in both roles defeats the separation: a configuration error, not a default."""
    cfg = with_gate(gate.cfg, attestation_keys=[arena.env.signing_pub])
    with pytest.raises(UsageError, match="share a key"):
        trust_anchors(cfg)
