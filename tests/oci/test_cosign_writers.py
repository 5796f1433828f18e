"""``sign-image`` / ``attest-image`` write cosign 2.x's legacy layout, byte for byte."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.cli import run_cli as _cli
from tests.support.ocireg import RunningOciRegistry, make_image, push_image
from trustload.crypto.keys import generate_keypair
from trustload.oci.cosign_sign import config_for, manifest_for, simple_signing_payload
from trustload.oci.reader import Descriptor
from trustload.oci.reference import RegistryRef
from trustload.oci.registry import RegistryRepository
from trustload.oci.transport import OciTransport

REPO = Path(__file__).resolve().parents[2]
_CANDIDATES = [  # beside the main checkout, or beside a worktree's parent
    (REPO / up / "shared" / "interop" / "containers-image" / "layouts" / "key-valid").resolve()
    for up in ("..", "../..")
]
VECTORS = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


@pytest.mark.skipif(not VECTORS.exists(), reason="genuine cosign vectors not present")
def test_payload_and_config_bytes_equal_genuine_cosign_output() -> None:
    """cosign's own payload and go-containerregistry's config, reproduced exactly."""
    index = json.loads((VECTORS / "index.json").read_text())
    image = next(m for m in index["manifests"] if m["annotations"]["kind"].endswith("/image"))
    sigs = next(m for m in index["manifests"] if m["annotations"]["kind"].endswith("/sigs"))
    sig_manifest = json.loads(_blob(VECTORS, sigs["digest"]))
    layer = sig_manifest["layers"][0]
    payload = _blob(VECTORS, layer["digest"])
    ref = RegistryRef("192.168.64.2:5000", "cosign-signed-single-sample", image["digest"])
    assert simple_signing_payload(ref) == payload
    desc = Descriptor(layer["mediaType"], layer["digest"], layer["size"], layer["annotations"])
    config = config_for([desc])
    assert config == _blob(VECTORS, sig_manifest["config"]["digest"])
    cfg_desc = Descriptor(
        "application/vnd.oci.image.config.v1+json",
        "sha256:" + hashlib.sha256(config).hexdigest(),
        len(config),
    )
    assert manifest_for(cfg_desc, [desc]) == _blob(VECTORS, sigs["digest"])


def _setup(reg: RunningOciRegistry, tmp_path: Path) -> tuple[RegistryRepository, str, Path]:
    repo = RegistryRepository(OciTransport(reg.config()), reg.host, "serving")
    image = make_image()
    push_image(repo, image)
    return repo, f"{reg.host}/serving@{image.digest}", reg.toml(tmp_path / "oci.toml")


def _verify(pub: Path, payload: bytes, b64sig: str) -> None:
    key = serialization.load_pem_public_key(pub.read_bytes())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(base64.b64decode(b64sig), payload, ec.ECDSA(hashes.SHA256()))


def test_sign_image_writes_cosign_sig_tag_and_appends(
    ocireg_basic: RunningOciRegistry, tmp_path: Path
) -> None:
    repo, ref, config = _setup(ocireg_basic, tmp_path)
    digest = ref.split("@")[1]
    keys = [generate_keypair(tmp_path / name) for name in ("one", "two")]
    for priv, _ in keys:
        done = _cli("sign-image", ref, "--key", str(priv), "--config", str(config))
        assert done.returncode == 0, done.stderr
        assert f":sha256-{digest[7:]}.sig@sha256:" in done.stdout
    sig = repo.tagged_manifest(f"sha256-{digest[7:]}.sig")
    assert sig is not None
    doc = json.loads(sig.raw)
    assert list(doc) == ["schemaVersion", "mediaType", "config", "layers"]
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert len(doc["layers"]) == 2  # appending kept the first signature
    for (_, pub), layer in zip(keys, doc["layers"], strict=True):
        assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
        assert list(layer["annotations"]) == ["dev.cosignproject.cosign/signature"]
        payload = repo.blob(Descriptor(layer["mediaType"], layer["digest"], layer["size"]), 4096)
        assert json.loads(payload) == {
            "critical": {
                "identity": {"docker-reference": f"{ocireg_basic.host}/serving"},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
        _verify(pub, payload, layer["annotations"]["dev.cosignproject.cosign/signature"])
    cfg = json.loads(
        repo.blob(Descriptor("x", doc["config"]["digest"], doc["config"]["size"]), 4096)
    )
    assert cfg["rootfs"]["diff_ids"] == [layer["digest"] for layer in doc["layers"]]


def test_attest_image_writes_cosign_att_tag(ocireg: RunningOciRegistry, tmp_path: Path) -> None:
    repo, ref, config = _setup(ocireg, tmp_path)
    digest = ref.split("@")[1]
    priv, pub = generate_keypair(tmp_path / "att")
    done = _cli(
        "attest-image", ref, "--key", str(priv), "--config", str(config),
        "--git-sha", "a" * 40, "--container-digest", digest, "--dataset-snapshot", "ds-2026-01",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    att = repo.tagged_manifest(f"sha256-{digest[7:]}.att")
    assert att is not None
    (layer,) = json.loads(att.raw)["layers"]
    assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert layer["annotations"] == {
        "dev.cosignproject.cosign/signature": "",
        "predicateType": "https://slsa.dev/provenance/v1",
    }
    envelope = json.loads(
        repo.blob(Descriptor(layer["mediaType"], layer["digest"], layer["size"]), 1 << 20)
    )
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["subject"][0]["digest"] == {"sha256": digest[7:]}
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    from trustload.formats.dsse import pae

    _verify_pae = base64.b64decode(envelope["signatures"][0]["sig"])
    key = serialization.load_pem_public_key(pub.read_bytes())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(
        _verify_pae,
        pae(envelope["payloadType"], base64.b64decode(envelope["payload"])),
        ec.ECDSA(hashes.SHA256()),
    )


def test_sign_image_unknown_digest_is_not_found(ocireg: RunningOciRegistry, tmp_path: Path) -> None:
    _, ref, config = _setup(ocireg, tmp_path)
    priv, _ = generate_keypair(tmp_path / "k")
    done = _cli("sign-image", ref.split("@")[0] + "@sha256:" + "c" * 64, "--key", str(priv),
                "--config", str(config))  # fmt: skip
    assert done.returncode == 1 and "NOT_FOUND" in done.stderr and "Traceback" not in done.stderr


def test_sign_image_tag_only_is_usage_error(tmp_path: Path) -> None:
    priv, _ = generate_keypair(tmp_path / "k")
    done = _cli("sign-image", "127.0.0.1:5000/serving:latest", "--key", str(priv))
    assert done.returncode == 2 and "pin by digest" in done.stderr


def test_sign_image_unlisted_host_is_denied(tmp_path: Path) -> None:
    priv, _ = generate_keypair(tmp_path / "k")
    done = _cli("sign-image", "127.0.0.1:5000/serving@sha256:" + "d" * 64, "--key", str(priv))
    assert done.returncode == 1 and "REGISTRY_NOT_ALLOWED" in done.stderr
