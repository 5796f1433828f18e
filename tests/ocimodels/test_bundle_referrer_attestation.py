"""cosign 3 / GitHub ``actions/attest`` style: the model's SLSA attestation is a Sigstore
bundle attached as an OCI referrer by @sigstore/oci (npm, an independent writer), not a
``.att`` tag. The gate finds it (distribution 2.8 has no referrers API: through the
``sha256-<hex>`` fallback tag), the engine verifies it like any attestation."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.client.pki import CA
from tests.gate.conftest import CONTAINER, DATASET, GIT_SHA, codes
from tests.oci.test_sigstore_oci_interop import NPM_DIR, _sigstore_oci
from tests.ocimodels.conftest import OciWorld, push_unsigned, record
from tests.support.ocireg import oci_registry
from tests.support.registry import RunningRegistry
from trustload.crypto.keys import load_private_key, model_signing_hint
from trustload.oci.cosign_sign import sign_image
from trustload.oci.reference import parse_artifact_uri
from trustload.oci.registry import RegistryRepository
from trustload.oci.transport import OciTransport
from trustload.signing import BUNDLE_MEDIA_TYPE, attest_bytes


def _slsa_bundle(key_path: Path, subject: str, digest: str, statement_digest: str) -> bytes:
    envelope = attest_bytes(
        subject_name=subject,
        artifact_digest=statement_digest,
        key_path=key_path,
        git_sha=GIT_SHA,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
        not_after=datetime.now(UTC) + timedelta(days=30),
    )
    hint = model_signing_hint(load_private_key(key_path).public_key())
    return json.dumps(
        {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
            "dsseEnvelope": json.loads(envelope),
        }
    ).encode()


def _attach(world: OciWorld, script: Path, ca: CA, uri: str, bundle: bytes) -> None:
    assert world.oci is not None and world.oci.username and world.oci.password_file
    ref = parse_artifact_uri(uri)
    artifact = world.work / f"bundle-{os.urandom(3).hex()}.json"
    artifact.write_bytes(bundle)
    env = {
        **os.environ,
        "NODE_EXTRA_CA_CERTS": str(ca.pem),
        "NODE_PATH": str(NPM_DIR / "node_modules"),
    }
    done = subprocess.run(
        ["node", str(script), f"{ref.host}/{ref.repository}", ref.digest, str(artifact),
         world.oci.username, world.oci.password_file.read_text().strip()],
        capture_output=True, text=True, timeout=120, env=env, cwd=NPM_DIR,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_slsa_bundle_referrer_attached_by_sigstore_oci_permits(
    running_registry: RunningRegistry, tmp_path: Path
) -> None:
    script = _sigstore_oci()
    ca = CA(tmp_path / "pki", "npm-ca")
    # @sigstore/oci speaks plain http to 127.0.0.1: the registry listens on 127.0.0.2.
    with oci_registry(tmp_path / "reg", ca, auth="basic", ip="127.0.0.2") as reg:
        work = tmp_path / "work"
        work.mkdir()
        world = OciWorld(running_registry, running_registry.env, work, oci=reg)
        key = world.env.signing_key
        for version, about_itself in (("1", True), ("2", False)):
            uri = push_unsigned(world)
            ref = parse_artifact_uri(uri)
            with OciTransport(reg.config()) as t:
                sign_image(RegistryRepository(t, ref.host, ref.repository), ref, key)
            subject = ref.digest if about_itself else "sha256:" + "e" * 64
            _attach(world, script, ca, uri, _slsa_bundle(key, str(ref), ref.digest, subject))
            record(world, uri, version)
            result = world.gate("risk@production")
            if about_itself:
                assert result.decision.permitted, result.decision.to_json()
                att = next(c for c in result.decision.checks if c.name == "attestation")
                assert "provenance/v1" in att.detail
            else:  # a referrer whose statement is about another digest
                assert codes(result) == ["ATTESTATION_SUBJECT_MISMATCH"], result.decision.to_json()
