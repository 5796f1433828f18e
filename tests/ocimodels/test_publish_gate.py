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


def test_interrupted_layer_download_resumes_with_range(oworld: OciWorld) -> None:
    """A partial layer left in the shared cache (a gate killed mid-download) is resumed
    from where it stopped: docker-registry answers the ``Range`` request with 206, and
    the whole layer still hashes to its descriptor."""
    from trustload.cache import BlobCache

    weights = bytes(range(256)) * 4096  # 1 MiB
    rec = oworld.publish_oci("risk", "1", oworld.model_dir({"model.onnx": weights}))
    oworld.release_to_prod("risk", "1")
    entry = rec.files[0]
    cache = BlobCache(oworld.gate_cfg.gate.cache_dir)
    cache.blobs.mkdir(parents=True)
    (cache.blobs / f".{entry.sha256}.partial").write_bytes(weights[: 300 * 1024])
    result = oworld.gate("risk@production")
    assert result.decision.permitted, result.decision.to_json()
    download = next(c for c in result.decision.checks if c.name == "download")
    assert "1 resumed" in download.detail, download.detail
    assert cache.path_for(f"sha256:{entry.sha256}").read_bytes() == weights


def test_cache_is_shared_with_the_registry_path(oworld: OciWorld) -> None:
    """The same bytes published both ways are one blob in the gate's cache: the second
    gate (OCI) finds the Registry path's verified copy and downloads nothing."""
    weights = b"\x07" * 200_000
    path = oworld.model_dir({"model.onnx": weights})
    oworld.publish("reg", "1", path)
    oworld.release_to_prod("reg", "1")
    assert oworld.gate("reg@production").decision.permitted
    oworld.publish_oci("risk", "1", path)
    oworld.release_to_prod("risk", "1")
    result = oworld.gate("risk@production")
    assert result.decision.permitted, result.decision.to_json()
    download = next(c for c in result.decision.checks if c.name == "download")
    assert download.detail.startswith("0 fetched, 1 re-verified"), download.detail


def test_a_cached_layer_altered_on_disk_is_evicted_and_fetched_again(oworld: OciWorld) -> None:
    """Warm start: cached layers are handed to the signature check unhashed; one altered
    on disk (same size) fails it, the cache re-verifies, evicts and re-fetches it once."""
    import os

    from trustload.cache import BlobCache

    rec = oworld.publish_oci("risk", "1")
    oworld.release_to_prod("risk", "1")
    assert oworld.gate("risk@production").decision.permitted
    weights = next(f for f in rec.files if f.path == "model.onnx")
    cached = BlobCache(oworld.gate_cfg.gate.cache_dir).path_for(f"sha256:{weights.sha256}")
    os.chmod(cached, 0o644)
    data = bytearray(cached.read_bytes())
    data[0] ^= 0xFF
    cached.write_bytes(bytes(data))
    result = oworld.gate("risk@production")
    assert result.decision.permitted, result.decision.to_json()
    download = next(c for c in result.decision.checks if c.name == "download")
    assert "1 evicted and fetched again" in download.detail, download.detail
