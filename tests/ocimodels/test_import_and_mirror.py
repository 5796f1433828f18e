"""Artifacts written by another implementation, and mirrors.

* Import: an OCI image layout written by hand here (plain JSON and files, the way ORAS
  and ModelPack tools lay artifacts out), pushed to docker-registry by ``skopeo copy``
  (containers/image, not trustload's writer), cosign-signed by trustload's cosign
  writer (no cosign binary in Debian), recorded with ``publish oci://...``: permit.
* Mirror: ``skopeo copy`` of a published artifact and of its ``.sig`` / ``.att`` tags to
  a second docker-registry; a gate that lists only the mirror (``mirror_of``) permits.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.client.pki import CA
from tests.gate.conftest import codes
from tests.ocimodels.conftest import OciWorld, record
from tests.ocimodels.test_gate_oci_denials import _sign
from tests.support.ocireg import RunningOciRegistry, oci_registry
from trustload.config import OciConfig
from trustload.oci.modelpack import FILEPATH, TITLE
from trustload.oci.reference import RegistryRef, artifact_uri, parse_artifact_uri

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="apt-get install skopeo")


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_layout(layout: Path, files: dict[str, bytes], *, flavour: str, tag: str = "v1") -> str:
    """An OCI image layout holding one artifact; returns its manifest digest."""
    layout.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layers = []
    for path, data in sorted(files.items()):
        if flavour == "oras":
            annotations = {TITLE: path}
            media = "application/octet-stream"
        else:
            annotations = {FILEPATH: path}
            media = "application/vnd.cncf.model.weight.v1.raw"
        layers.append({"mediaType": media, **_blob(layout, data), "annotations": annotations})
    if flavour == "oras":
        config = {"mediaType": "application/vnd.oci.empty.v1+json", **_blob(layout, b"{}")}
        artifact_type = "application/vnd.example.model"
    else:
        doc = {"descriptor": {"name": "imported"}, "config": {}, "modelfs": {"type": "layers",
               "diff_ids": [x["digest"] for x in layers]}}  # fmt: skip
        config = {
            "mediaType": "application/vnd.cncf.model.config.v1+json",
            **_blob(layout, json.dumps(doc).encode()),
        }
        artifact_type = "application/vnd.cncf.model.manifest.v1+json"
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": config,
        "layers": layers,
    }
    raw = json.dumps(manifest, indent=1).encode()  # not trustload's encoding
    desc = {"mediaType": manifest["mediaType"], **_blob(layout, raw)}
    desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return str(desc["digest"])


def _skopeo(tmp: Path, *regs: RunningOciRegistry) -> list[str]:
    certs = tmp / "certs"
    certs.mkdir(exist_ok=True)
    for reg in regs:
        shutil.copy(reg.ca, certs / "ca.crt")
    regd = tmp / "registries.d"
    regd.mkdir(exist_ok=True)
    (regd / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
    (tmp / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    return ["skopeo", "--policy", str(tmp / "policy.json"), "--registries.d", str(regd)]


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("flavour", ["oras", "modelpack"])
def test_import_of_an_artifact_pushed_by_skopeo_permits(
    oworld: OciWorld, tmp_path: Path, flavour: str
) -> None:
    assert oworld.oci is not None
    files = {"weights/model.onnx": b"\x01" * 300_000, "tokenizer.json": b'{"v": 1}'}
    digest = write_layout(tmp_path / "layout", files, flavour=flavour)
    base = _skopeo(tmp_path, oworld.oci)
    certs = str(tmp_path / "certs")
    dest = f"docker://{oworld.oci.host}/models/imported:v1"
    layout = f"oci:{tmp_path / 'layout'}:v1"
    _run([*base, "copy", "--preserve-digests", "--dest-cert-dir", certs, layout, dest])
    uri = artifact_uri(RegistryRef(oworld.oci.host, "models/imported", digest))
    _sign(oworld, uri, oworld.env.signing_key)
    rec = record(oworld, uri)
    assert {f.path for f in rec.files} == set(files)
    result = oworld.gate("risk@production")
    assert result.decision.permitted, result.decision.to_json()
    assert result.layout is not None
    for rel, where in result.layout.files:
        assert where.read_bytes() == files[rel]


def _mirror_copy(oworld: OciWorld, tmp_path: Path, mirror: RunningOciRegistry, digest: str,
                 repository: str, host: str) -> None:  # fmt: skip
    """skopeo copy of the artifact and its cosign .sig/.att tags from the origin."""
    assert oworld.oci is not None
    base = _skopeo(tmp_path, oworld.oci, mirror)
    certs = str(tmp_path / "certs")
    tag = digest.replace(":", "-", 1)
    src, dst = f"docker://{host}/{repository}", f"docker://{mirror.host}/{repository}"
    for what in (f"@{digest}", f":{tag}.sig", f":{tag}.att"):
        target = ":v1" if what.startswith("@") else what
        _run([*base, "copy", "--all", "--preserve-digests", "--src-cert-dir", certs,
              "--dest-cert-dir", certs, f"{src}{what}", f"{dst}{target}"])  # fmt: skip


def test_mirror_copied_by_skopeo_permits_with_only_the_mirror_listed(
    oworld: OciWorld, tmp_path: Path, oci_ca: CA
) -> None:
    assert oworld.oci is not None
    rec = oworld.publish_oci("risk", "1")
    oworld.release_to_prod("risk", "1")
    assert rec.artifact_uri is not None
    ref = parse_artifact_uri(rec.artifact_uri)
    with oci_registry(tmp_path / "mirror", oci_ca, name="mirror") as mirror:
        _mirror_copy(oworld, tmp_path, mirror, ref.digest, ref.repository, ref.host)
        oworld.oci_config = OciConfig(registries=[mirror.entry(mirror_of=[ref.host])])
        result = oworld.gate("risk@production")
        assert result.decision.permitted, result.decision.to_json()
        # The origin is not listed, so it was never contacted. A mirror of some other
        # host does not make this host allowed.
        oworld.oci_config = OciConfig(registries=[mirror.entry(mirror_of=["127.0.0.9:1"])])
        denied = oworld.gate("risk@production", cfg=oworld.gate_cfg)
        assert codes(denied) == ["REGISTRY_NOT_ALLOWED"], denied.decision.to_json()


def test_mirror_serving_other_bytes_denies_and_a_mirror_down_falls_through(
    oworld: OciWorld, tmp_path: Path, oci_ca: CA
) -> None:
    """A mirror can withhold bytes (the gate goes on to the origin) but never substitute
    them: wrong bytes from a mirror deny with DIGEST_MISMATCH even though the honest
    origin is listed too (no fall-through on a mismatch)."""
    from tests.ocimodels.conftest import layer_data_path

    assert oworld.oci is not None
    rec = oworld.publish_oci("risk", "1")
    oworld.release_to_prod("risk", "1")
    assert rec.artifact_uri is not None
    ref = parse_artifact_uri(rec.artifact_uri)
    weights = next(f for f in rec.files if f.path == "model.onnx")
    with oci_registry(tmp_path / "mirror", oci_ca, name="mirror") as mirror:
        _mirror_copy(oworld, tmp_path, mirror, ref.digest, ref.repository, ref.host)
        data = layer_data_path(mirror, f"sha256:{weights.sha256}")
        blob = bytearray(data.read_bytes())
        blob[1000] ^= 0xFF
        data.write_bytes(bytes(blob))
        both = [mirror.entry(mirror_of=[ref.host]), oworld.oci.entry()]
        oworld.oci_config = OciConfig(registries=both)
        denied = oworld.gate("risk@production")
        assert codes(denied) == ["DIGEST_MISMATCH"], denied.decision.to_json()
        assert denied.layout is None
    # The mirror is gone now: the gate goes on to the listed origin and permits.
    result = oworld.gate("risk@production")
    assert result.decision.permitted, result.decision.to_json()
