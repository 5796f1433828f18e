"""@sigstore/oci (npm; what GitHub's ``actions/attest`` uses) attaches a cosign-3 style
Sigstore bundle referrer to an image in a real docker-registry; our client finds it.

distribution 2.8 has no referrers API, so @sigstore/oci writes the fallback index under
the ``sha256-<hex>`` tag; our reader falls back to that tag, and the referrer manifest it
lists is fetched by digest (checked) with its real ``subject``. @sigstore/oci forces plain
http for ``127.0.0.1`` and ``localhost``, so the registry listens on 127.0.0.2.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.client.pki import CA
from tests.support.ocireg import make_image, oci_registry, push_image
from trustload.crypto.keys import generate_keypair, load_private_key, model_signing_hint
from trustload.oci.reader import Descriptor
from trustload.oci.registry import RegistryRepository
from trustload.oci.transport import OciTransport
from trustload.signing import BUNDLE_MEDIA_TYPE, attest_bytes

ROOT = Path(__file__).resolve().parents[2]
NPM_DIR = ROOT / ".venv" / "npm-sigstore-oci"
VERSION = "0.6.0"
ATTACH_JS = """
const { attachArtifactToImage } = require('@sigstore/oci');
const fs = require('fs');
const [imageName, imageDigest, artifactPath, user, pass] = process.argv.slice(2);
attachArtifactToImage({
  imageName, imageDigest,
  credentials: { username: user, password: pass },
  artifact: fs.readFileSync(artifactPath),
  mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
  annotations: { 'dev.sigstore.bundle.content': 'dsse-envelope',
                 'dev.sigstore.bundle.predicateType': 'https://slsa.dev/provenance/v1' },
}).then((d) => console.log(JSON.stringify(d)),
        (e) => { console.error(String(e), e.cause ? String(e.cause) : ''); process.exit(1); });
"""


def _sigstore_oci() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm missing")
    # @sigstore/oci 0.6.0 requires promise-retry without declaring it: install it too.
    if not (NPM_DIR / "node_modules" / "promise-retry").exists():
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NPM_DIR),
             f"@sigstore/oci@{VERSION}", "promise-retry@2"],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"npm install @sigstore/oci failed: {done.stderr[-300:]}")
    script = NPM_DIR / "attach.js"
    script.write_text(ATTACH_JS)
    return script


def _bundle(key_path: Path, subject: str, digest: str) -> bytes:
    """A Sigstore bundle v0.3 around our DSSE SLSA v1 attestation of the image."""
    envelope = json.loads(
        attest_bytes(
            subject_name=subject,
            artifact_digest=digest,
            key_path=key_path,
            git_sha="b" * 40,
            container_digest=digest,
            dataset_snapshot="ds-1",
        )  # fmt: skip
    )
    key = load_private_key(key_path)
    return json.dumps(
        {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {
                "publicKey": {"hint": model_signing_hint(key.public_key())},
                "tlogEntries": [],
            },
            "dsseEnvelope": envelope,
        }
    ).encode()


def test_sigstore_oci_bundle_referrer_read_back(tmp_path: Path) -> None:
    script = _sigstore_oci()
    ca = CA(tmp_path / "pki", "npm-ca")
    with oci_registry(tmp_path / "reg", ca, auth="basic", ip="127.0.0.2") as reg:
        repo = RegistryRepository(OciTransport(reg.config()), reg.host, "serving")
        image = make_image(b"attested by @sigstore/oci\n")
        push_image(repo, image)
        priv, _ = generate_keypair(tmp_path / "signer")
        bundle = _bundle(priv, f"{reg.host}/serving", image.digest)
        artifact = tmp_path / "bundle.json"
        artifact.write_bytes(bundle)
        assert reg.password_file is not None and reg.username is not None
        env = {
            **os.environ,
            "NODE_EXTRA_CA_CERTS": str(ca.pem),
            "NODE_PATH": str(NPM_DIR / "node_modules"),
        }
        done = subprocess.run(
            ["node", str(script), f"{reg.host}/serving", image.digest, str(artifact),
             reg.username, reg.password_file.read_text().strip()],
            capture_output=True, text=True, timeout=120, env=env, cwd=NPM_DIR,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        written = json.loads(done.stdout)

        (found,) = repo.referrers(image.digest)  # through the sha256-<hex> fallback tag
        assert found.digest == written["digest"]
        assert found.artifact_type == BUNDLE_MEDIA_TYPE
        referrer = json.loads(repo.manifest(found.digest).raw)  # digest-checked
        assert referrer["subject"]["digest"] == image.digest
        assert referrer["artifactType"] == BUNDLE_MEDIA_TYPE
        assert referrer["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
        assert found.annotations["dev.sigstore.bundle.predicateType"].endswith("provenance/v1")
        (layer,) = referrer["layers"]
        assert layer["mediaType"] == BUNDLE_MEDIA_TYPE
        got = repo.blob(Descriptor(layer["mediaType"], layer["digest"], layer["size"]), 1 << 20)
        assert got == bundle
        payload = base64.b64decode(json.loads(got)["dsseEnvelope"]["payload"])
        assert json.loads(payload)["subject"][0]["digest"]["sha256"] == image.digest[7:]
