"""skopeo (containers/image, an independent implementation) against our writers and reader.

* ``skopeo copy`` with sigstore attachments (``use-sigstore-attachments``) mirrors the
  image and its signatures to a second registry; our client reads the mirror back,
  digest-checked: signature layers and their annotations are byte-identical, while the
  ``.sig`` manifest itself is re-encoded by containers/image (so a verifier must never
  pin the ``.sig`` manifest's digest). Copying the ``.sig`` tag as an image with
  ``--preserve-digests`` keeps its exact bytes.
* Debian's skopeo 1.9.3 is built without sigstore *verification* ("Debian-local change:
  sigstore disabled"), so it cannot serve as an independent verifier here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.client.pki import CA
from tests.support.ocireg import RunningOciRegistry, make_image, oci_registry, push_image
from trustload.config import OciConfig
from trustload.crypto.keys import generate_keypair
from trustload.oci.cosign_sign import sign_image
from trustload.oci.reader import Descriptor
from trustload.oci.reference import RegistryRef
from trustload.oci.registry import RegistryRepository
from trustload.oci.transport import OciTransport

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="apt-get install skopeo")


def _skopeo_env(tmp: Path, reg: RunningOciRegistry, policy: dict[str, object]) -> list[str]:
    certs = tmp / "certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(reg.ca, certs / "ca.crt")
    regd = tmp / "registries.d"
    regd.mkdir(exist_ok=True)
    (regd / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
    (tmp / "policy.json").write_text(json.dumps(policy))
    return ["skopeo", "--policy", str(tmp / "policy.json"), "--registries.d", str(regd)]


def _creds(reg: RunningOciRegistry) -> str:
    assert reg.username and reg.password_file
    return f"{reg.username}:{reg.password_file.read_text().strip()}"


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_skopeo_verifies_and_mirrors_our_cosign_signature(
    tmp_path: Path, oci_ca: CA, ocireg_basic: RunningOciRegistry
) -> None:
    src = ocireg_basic
    with oci_registry(tmp_path / "mirror", oci_ca, name="mirror") as dst:
        cfg = OciConfig(registries=[*src.config().registries, *dst.config().registries])
        transport = OciTransport(cfg)
        repo = RegistryRepository(transport, src.host, "serving")
        image = make_image()
        push_image(repo, image)
        priv, _pub = generate_keypair(tmp_path / "signer")
        written = sign_image(repo, RegistryRef(src.host, "serving", image.digest), priv)

        policy = {
            "default": [{"type": "reject"}],
            "transports": {
                "docker": {
                    # Debian's skopeo 1.9 is built without sigstore *verification*
                    # ("Debian-local change: sigstore disabled"); copying attachments works.
                    src.host: [{"type": "insecureAcceptAnything"}],
                    dst.host: [{"type": "insecureAcceptAnything"}],
                }
            },
        }
        base = _skopeo_env(tmp_path, src, policy)
        certs = str(tmp_path / "certs")
        copy = [
            *base, "copy", "--preserve-digests", "--src-cert-dir", certs,
            "--src-creds", _creds(src), "--dest-cert-dir", certs,
            f"docker://{src.host}/serving@{image.digest}", f"docker://{dst.host}/serving:mirrored",
        ]  # fmt: skip
        done = _run(copy)
        assert done.returncode == 0, done.stderr

        mirror = RegistryRepository(transport, dst.host, "serving")
        assert mirror.manifest(image.digest).raw == image.manifest
        sig_tag = written.tag
        theirs = mirror.tagged_manifest(sig_tag)
        ours = repo.tagged_manifest(sig_tag)
        assert theirs is not None and ours is not None
        their_layers = json.loads(theirs.raw)["layers"]
        our_layers = json.loads(ours.raw)["layers"]
        assert their_layers == our_layers  # descriptors and annotations preserved
        # containers/image re-writes the .sig manifest and config in its own encoding
        # (field order, no history): the manifest differs, the signatures do not.
        assert theirs.raw != ours.raw and theirs.digest != ours.digest
        for layer in their_layers:
            desc = Descriptor(layer["mediaType"], layer["digest"], layer["size"])
            assert mirror.blob(desc, 4096) == repo.blob(desc, 4096)  # digest-checked both sides

        # The .sig tag itself copied as an artifact keeps its exact bytes.
        tagcopy = [
            *base, "copy", "--preserve-digests", "--src-cert-dir", certs,
            "--src-creds", _creds(src), "--dest-cert-dir", certs,
            f"docker://{src.host}/serving:{sig_tag}", f"docker://{dst.host}/copied:{sig_tag}",
        ]  # fmt: skip
        done = _run(tagcopy)
        assert done.returncode == 0, done.stderr
        exact = RegistryRepository(transport, dst.host, "copied").manifest(ours.digest)
        assert exact.raw == ours.raw
