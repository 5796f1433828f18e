"""The serving image (R2.5): with ``[gate.image]``, every gate decision verifies the
image's cosign signature, and the model's attestation must name that very image.

The image is a ``cosign save``-shaped layout signed with a throwaway key (``oci-layout:``
reference); the model comes from the real Registry over mTLS, as in every attack test.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from tests.attacks.helpers import Arena, Gate, assert_denied, with_gate
from tests.support.cosign_layout import Layer, cosign_sign, signed_layout, simple_signing
from trustload.config import ClientFileConfig, GateImageConfig
from trustload.crypto.keys import PrivateKey, public_pem
from trustload.decision import ReasonCode


def _key_file(root: Path, key: PrivateKey, name: str) -> Path:
    path = root / name
    path.write_bytes(public_pem(key.public_key()))
    return path


def _image_cfg(gate: Gate, layout: Path, digest: str, pub: Path) -> ClientFileConfig:
    image = GateImageConfig(reference=f"oci-layout:{layout}@{digest}", keys=[pub])
    return with_gate(gate.cfg, image=image)


def _model_for(arena: Arena, container_digest: str) -> str:
    """An honest model whose record and attestation name ``container_digest``."""
    name = arena.name()
    path = arena.model_file()
    arena.publish(
        name,
        "1",
        path,
        signed=arena.sign(path, container_digest=container_digest),
        container_digest=container_digest,
    )
    return name


def test_image_signed_serving_image_permits(arena: Arena, gate: Gate) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    layout, digest = signed_layout(gate.root / "image", key)
    cfg = _image_cfg(gate, layout, digest, _key_file(gate.root, key, "image.pub"))
    result = gate.run(f"{_model_for(arena, digest)}@production", cfg)
    assert result.decision.permitted, result.decision.to_json()
    doc = result.decision.to_json()
    assert doc["image_digest"] == digest
    (check,) = [c for c in doc["checks"] if c["name"] == "image_signature"]
    assert check["ok"] and digest in check["detail"]


def test_image_unsigned_serving_image(arena: Arena, gate: Gate) -> None:
    """The serving image has no cosign signature at all.

    Attack: image / unsigned serving image
    """
    key = ec.generate_private_key(ec.SECP256R1())
    layout, digest = signed_layout(gate.root / "image", key, sig_layers=[])
    cfg = _image_cfg(gate, layout, digest, _key_file(gate.root, key, "image.pub"))
    result = assert_denied(
        gate.run(f"{_model_for(arena, digest)}@production", cfg),
        ReasonCode.IMAGE_SIGNATURE_INVALID,
        cache_dir=gate.cache_dir,
    )
    assert result.decision.to_json()["image_digest"] == digest


def test_image_signed_by_an_untrusted_key(arena: Arena, gate: Gate) -> None:
    """The serving image is cosign-signed, by a key the gate does not trust.

    Attack: image / wrong signer
    """
    signer = ec.generate_private_key(ec.SECP256R1())
    trusted = ec.generate_private_key(ec.SECP256R1())
    layout, digest = signed_layout(gate.root / "image", signer)
    cfg = _image_cfg(gate, layout, digest, _key_file(gate.root, trusted, "image.pub"))
    assert_denied(
        gate.run(f"{_model_for(arena, digest)}@production", cfg),
        ReasonCode.IMAGE_SIGNATURE_INVALID,
        cache_dir=gate.cache_dir,
    )


def test_image_signature_of_another_image(arena: Arena, gate: Gate) -> None:
    """A valid signature by the trusted key, whose payload names another image digest
    (a signature lifted from another image's ``.sig``).

    Attack: image / signature replay
    """
    key = ec.generate_private_key(ec.SECP256R1())
    payload = simple_signing("sha256:" + "ab" * 32)
    lifted = Layer(
        payload, annotations={"dev.cosignproject.cosign/signature": cosign_sign(key, payload)}
    )
    layout, digest = signed_layout(gate.root / "image", key, sig_layers=[lifted])
    cfg = _image_cfg(gate, layout, digest, _key_file(gate.root, key, "image.pub"))
    assert_denied(
        gate.run(f"{_model_for(arena, digest)}@production", cfg),
        ReasonCode.IMAGE_SIGNATURE_INVALID,
        cache_dir=gate.cache_dir,
    )


def test_image_model_attested_for_another_serving_image(arena: Arena, gate: Gate) -> None:
    """The image is genuinely signed, but the model's attestation names another serving
    container: the model was never built for this image.

    Attack: image / container mismatch
    """
    key = ec.generate_private_key(ec.SECP256R1())
    layout, digest = signed_layout(gate.root / "image", key)
    cfg = _image_cfg(gate, layout, digest, _key_file(gate.root, key, "image.pub"))
    assert_denied(
        gate.run(f"{arena.good()}@production", cfg),
        ReasonCode.ATTESTATION_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_image_config_must_be_pinned_and_coherent(tmp_path: Path) -> None:
    import pytest

    from trustload.config import GateConfig
    from trustload.errors import UsageError

    with pytest.raises(ValueError, match="pin by digest"):
        GateImageConfig(reference="127.0.0.1:5000/serving:latest")
    digest = "sha256:" + "1" * 64
    with pytest.raises(ValueError, match="disagree"):
        GateConfig(
            image=GateImageConfig(reference=f"127.0.0.1:5000/serving@{digest}"),
            runtime_container_digest="sha256:" + "2" * 64,
        )
    toml = tmp_path / "gate.toml"
    toml.write_text(
        '[registry]\nurl = "https://127.0.0.1:1"\n[gate.image]\n'
        'reference = "127.0.0.1:5000/serving:latest"\n'
    )
    from trustload.config import load_client_config

    with pytest.raises(UsageError, match=r"gate\.image\.reference: .*pin by digest"):
        load_client_config(toml)


def _blob_bundle_gate(arena: Arena, gate: Gate, with_set: bool) -> tuple[str, ClientFileConfig]:
    from tests.crypto.helpers import load_key
    from tests.support.cosign_layout import blob_bundle

    log_key = ec.generate_private_key(ec.SECP256R1())
    path = arena.model_file()
    bundle = blob_bundle(
        path.read_bytes(), load_key(arena.env.signing_key), log_key if with_set else None
    )
    name = arena.name()
    arena.publish(name, "1", path, signature=bundle)
    rekor = _key_file(gate.root, log_key, "rekor.pub")
    return name, with_gate(gate.cfg, rekor_keys=[rekor])


def test_image_gate_accepts_a_cosign_blob_bundle_with_its_set(arena: Arena, gate: Gate) -> None:
    name, cfg = _blob_bundle_gate(arena, gate, with_set=True)
    result = gate.run(f"{name}@production", cfg)
    assert result.decision.permitted, result.decision.to_json()
    (sig,) = [c for c in result.decision.checks if c.name == "signature"]
    assert "cosign blob bundle" in sig.detail


def test_image_blob_bundle_without_required_set(arena: Arena, gate: Gate) -> None:
    """A model signed with ``cosign sign-blob --bundle`` but without the Rekor SET that
    ``[gate] rekor_keys`` requires: nothing offline proves it was logged.

    Attack: image / transparency stripped
    """
    name, cfg = _blob_bundle_gate(arena, gate, with_set=False)
    assert_denied(
        gate.run(f"{name}@production", cfg),
        ReasonCode.TRANSPARENCY_UNAVAILABLE,
        cache_dir=gate.cache_dir,
    )


def test_image_bare_signature_when_a_set_is_required(arena: Arena, gate: Gate) -> None:
    """The blob bundle is stripped down to its bare base64 signature (still valid for the
    trusted key) so that no SET is left to check: a downgrade around the log requirement.

    Attack: image / transparency stripped
    """
    import base64
    import json

    from tests.crypto.helpers import load_key
    from tests.support.cosign_layout import blob_bundle

    path = arena.model_file()
    bundle = json.loads(blob_bundle(path.read_bytes(), load_key(arena.env.signing_key), None))
    bare = bundle["base64Signature"].encode()
    assert base64.b64decode(bare)
    name = arena.name()
    arena.publish(name, "1", path, signature=bare)
    log_key = ec.generate_private_key(ec.SECP256R1())
    cfg = with_gate(gate.cfg, rekor_keys=[_key_file(gate.root, log_key, "rekor.pub")])
    assert gate.run(f"{name}@production").decision.permitted  # no log required: accepted
    assert_denied(
        gate.run(f"{name}@production", cfg),
        ReasonCode.TRANSPARENCY_UNAVAILABLE,
        cache_dir=gate.cache_dir,
    )
