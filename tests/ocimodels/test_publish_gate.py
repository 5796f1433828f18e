"""publish --oci, then the gate over OCI: the Registry governs, docker-registry serves."""

from __future__ import annotations

import json

from tests.ocimodels.conftest import REPO, OciWorld
from trustload.oci.modelpack import ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, FILEPATH


def test_publish_oci_then_gate_permits(oworld: OciWorld) -> None:
    rec = oworld.publish_oci("risk", "1")
    assert oworld.oci is not None
    assert rec.artifact_uri == f"oci://{oworld.oci.host}/{REPO}@{rec.artifact_digest}"
    assert rec.signature_digest is None and rec.attestation_digest is None
    assert sorted(f.path for f in rec.files) == ["README.md", "config.json", "model.onnx"]
    oworld.release_to_prod("risk", "1")
    result = oworld.gate("risk@production")
    assert result.decision.permitted, result.decision.to_json()
    assert result.layout is not None
    assert {rel for rel, _ in result.layout.files} == {"README.md", "config.json", "model.onnx"}
    sig = next(c for c in result.decision.checks if c.name == "signature")
    assert "cosign signature over manifest" in sig.detail
    assert result.decision.artifact_digest == rec.artifact_digest
    # Warm: every layer re-verified from the shared cache, still permitted.
    again = oworld.gate("risk@production")
    assert again.decision.permitted, again.decision.to_json()
    download = next(c for c in again.decision.checks if c.name == "download")
    assert download.detail.startswith("0 fetched"), download.detail


def test_pushed_manifest_is_modelpack(oworld: OciWorld) -> None:
    from trustload.oci.reference import parse_artifact_uri
    from trustload.oci.registry import RegistryRepository
    from trustload.oci.transport import OciTransport

    assert oworld.oci is not None
    rec = oworld.publish_oci("risk", "1")
    assert rec.artifact_uri is not None
    ref = parse_artifact_uri(rec.artifact_uri)
    with OciTransport(oworld.oci.config()) as t:
        doc = json.loads(RegistryRepository(t, ref.host, ref.repository).manifest(ref.digest).raw)
    assert doc["artifactType"] == ARTIFACT_TYPE
    assert doc["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    roles = {layer["annotations"][FILEPATH]: layer["mediaType"] for layer in doc["layers"]}
    assert roles == {
        "README.md": "application/vnd.cncf.model.doc.v1.raw",
        "config.json": "application/vnd.cncf.model.weight.config.v1.raw",
        "model.onnx": "application/vnd.cncf.model.weight.v1.raw",
    }
