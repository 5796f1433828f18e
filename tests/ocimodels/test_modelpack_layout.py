"""The ModelPack layout, pure: what trustload writes, and what the reader refuses (each
refusal is DIGEST_MISMATCH with its reason, before any layer is downloaded)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trustload.decision import ReasonCode
from trustload.errors import FormatError
from trustload.oci.modelpack import (
    ARTIFACT_TYPE,
    CODE,
    CONFIG_MEDIA_TYPE,
    DOC,
    FILEPATH,
    KITOPS_CONFIG,
    TITLE,
    WEIGHT,
    WEIGHT_CONFIG,
    config_bytes,
    layer_media_type,
    manifest_bytes,
    parse_model_manifest,
)
from trustload.oci.reader import Descriptor

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
CFG = Descriptor(CONFIG_MEDIA_TYPE, "sha256:" + "c" * 64, 10)


def layer(path: str | None, digest: str = D1, media: str = WEIGHT, key: str = FILEPATH) -> Any:
    out: dict[str, Any] = {"mediaType": media, "digest": digest, "size": 5}
    if path is not None:
        out["annotations"] = {key: path}
    return out


def manifest(*layers: Any, **top: Any) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": CFG.digest, "size": 10},
        "layers": list(layers),
    }
    doc.update(top)
    return json.dumps(doc).encode()


def refused(raw: bytes) -> str:
    with pytest.raises(FormatError) as err:
        parse_model_manifest(raw)
    assert err.value.code is ReasonCode.DIGEST_MISMATCH
    return err.value.message


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("model.safetensors", WEIGHT),
        ("weights/part-00001.bin", WEIGHT),
        ("config.json", WEIGHT_CONFIG),
        ("tokenizer.json", WEIGHT_CONFIG),
        ("tokenizer.model", WEIGHT_CONFIG),
        ("README.md", DOC),
        ("LICENSE", DOC),
        ("serve/handler.py", CODE),
    ],
)
def test_role_media_types(path: str, media: str) -> None:
    assert layer_media_type(path) == media


def test_written_manifest_round_trips_through_the_reader() -> None:
    layers = [
        Descriptor(WEIGHT, D1, 5, {FILEPATH: "model.onnx"}),
        Descriptor(WEIGHT_CONFIG, D2, 5, {FILEPATH: "config.json"}),
    ]
    raw = manifest_bytes(CFG, layers)
    doc = json.loads(raw)
    assert doc["artifactType"] == ARTIFACT_TYPE
    assert doc["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    parsed = parse_model_manifest(raw)
    assert parsed.flavour == "modelpack"
    assert [p for p, _ in parsed.files] == ["config.json", "model.onnx"]  # sorted
    assert parsed.size == 10
    cfg = json.loads(config_bytes("risk", "1", "onnx", layers))
    assert cfg["modelfs"] == {"type": "layers", "diff_ids": [D1, D2]}
    assert cfg["descriptor"] == {"name": "risk", "version": "1"}


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../escape.bin", "unsafe path"),
        ("a/../../b", "unsafe path"),
        ("/etc/passwd", "unsafe path"),
        ("a//b", "unsafe path"),
        ("./model.bin", "unsafe path"),
        ("back\\slash", "bad path"),
        ("", "neither"),
    ],
)
def test_unsafe_paths_are_refused(path: str, why: str) -> None:
    assert why in refused(manifest(layer(path)))


def test_missing_annotation_is_refused() -> None:
    assert "no file path" in refused(manifest(layer(None)))


def test_duplicate_paths_are_refused() -> None:
    msg = refused(manifest(layer("model.bin", D1), layer("model.bin", D2)))
    assert "both claim the path 'model.bin'" in msg


def test_a_file_inside_another_file_is_refused() -> None:
    msg = refused(manifest(layer("model", D1), layer("model/weights.bin", D2)))
    assert "inside the file 'model'" in msg


@pytest.mark.parametrize(
    "media",
    [
        "application/vnd.cncf.model.weight.v1.tar",
        "application/vnd.cncf.model.weight.v1.tar+gzip",
        "application/vnd.kitops.modelkit.model.v1.tar+gzip",
        "application/vnd.kitops.modelkit.code.v1.tar",
    ],
)
def test_archive_layers_are_refused_with_a_reason(media: str) -> None:
    assert "archive" in refused(manifest(layer("model.onnx", media=media)))


def test_oras_title_and_kitops_raw_layers_are_read() -> None:
    oras = manifest(
        layer("model.onnx", media="application/octet-stream", key=TITLE),
        artifactType="application/vnd.example",
        config={"mediaType": "application/vnd.oci.empty.v1+json", "digest": D2, "size": 2},
    )
    assert parse_model_manifest(oras).flavour == "oras"
    kit = manifest(
        layer("model.onnx", media="application/vnd.kitops.modelkit.model.v1", key=TITLE),
        artifactType="application/vnd.kitops.modelkit.manifest.v1+json",
        config={"mediaType": KITOPS_CONFIG, "digest": D2, "size": 2},
    )
    assert parse_model_manifest(kit).flavour == "kitops"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        json.dumps({"schemaVersion": 1}).encode(),
        manifest(),  # no layers
        manifest(layer("m.bin"), mediaType="application/vnd.oci.image.index.v1+json"),
        manifest({"mediaType": WEIGHT, "digest": "sha256:short", "size": 1}),
        manifest({"mediaType": WEIGHT, "digest": D1, "size": -1}),
    ],
)
def test_malformed_manifests_are_refused(raw: bytes) -> None:
    refused(raw)


def _oci_layout(tmp_path: Any, data: bytes, *, known: bool = False) -> Any:
    """An OCI model layout of one layer; with ``known``, carrying the digests a download
    would have computed of the blob as it is on disk now (:mod:`trustload.streamhash`)."""
    import hashlib
    import os
    from pathlib import Path

    from trustload.digests import ModelLayout
    from trustload.streamhash import FileIdentity, KnownDigests

    root = Path(tmp_path)
    blob = root / "blob"
    blob.write_bytes(data)
    hexdigest = hashlib.sha256(data).hexdigest()
    raw = manifest(layer("model.bin", f"sha256:{hexdigest}") | {"size": len(data)})
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    facts = (KnownDigests(blob, FileIdentity.of(os.lstat(blob)), hexdigest, None, ()),)
    return ModelLayout(
        "directory",
        "m",
        (("model.bin", blob),),
        digest=digest,
        oci_manifest=raw,
        known=facts if known else (),
    )


def test_oci_measurement_hashes_or_reuses_the_download_pass(tmp_path: Any) -> None:
    from trustload.checks.oci_model import measure_oci_layout

    hashed = measure_oci_layout(_oci_layout(tmp_path, b"weights"))
    reused = measure_oci_layout(_oci_layout(tmp_path, b"weights", known=True))
    assert hashed == reused and hashed.digest.startswith("sha256:")
    # Bytes that differ from the layer digest, when hashed here: refused.
    layout = _oci_layout(tmp_path, b"weights")
    (tmp_path / "blob").write_bytes(b"WEIGHTS")
    with pytest.raises(FormatError, match="differs from its layer"):
        measure_oci_layout(layout)
    # Written in place after the download's digests were taken: the facts no longer
    # describe the file, so it is hashed again and refused.
    stale = _oci_layout(tmp_path, b"weights", known=True)
    (tmp_path / "blob").write_bytes(b"WEIGHTS")
    with pytest.raises(FormatError, match="differs from its layer"):
        measure_oci_layout(stale)
