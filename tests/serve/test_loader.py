"""The loader loads exactly the verified bytes, refuses pickle and tampering."""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from trustload.decision import ReasonCode
from trustload.digests import FileEntry, ModelLayout
from trustload.serve.loader import LoadError, load_verified, read_verified

from .onnx_models import write_model


def _entry(path: Path, rel: str | None = None) -> FileEntry:
    data = path.read_bytes()
    return FileEntry(rel or path.name, hashlib.sha256(data).hexdigest(), len(data))


def test_onnx_loads_from_verified_bytes_and_infers(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m.onnx", [1.0, -2.0, 0.5], 0.25)
    loaded = load_verified(ModelLayout.from_path(model), [_entry(model)], "onnx")
    assert [s.name for s in loaded.inputs] == ["x"]
    assert loaded.inputs[0].datatype == "FP32" and loaded.inputs[0].shape == (-1, 3)
    out = loaded.infer({"x": np.array([[1.0, 1.0, 2.0]], dtype=np.float32)})
    expected = 1.0 / (1.0 + math.exp(-(1.0 - 2.0 + 1.0 + 0.25)))
    assert out["score"].shape == (1, 1)
    assert abs(float(out["score"][0, 0]) - expected) < 1e-6
    assert loaded.warmup()["score"].shape == (1, 1)


def test_one_byte_changed_after_verification_is_digest_mismatch(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m.onnx", [1.0, 2.0], 0.0)
    verified = _entry(model)
    data = bytearray(model.read_bytes())
    data[-1] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(LoadError) as exc:
        load_verified(ModelLayout.from_path(model), [verified], "onnx")
    assert exc.value.code is ReasonCode.DIGEST_MISMATCH


def test_symlinked_blob_is_refused(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m.onnx", [1.0], 0.0)
    link = tmp_path / "link.onnx"
    link.symlink_to(model)
    with pytest.raises(LoadError) as exc:
        read_verified(link, _entry(model).sha256)
    assert exc.value.code is ReasonCode.DIGEST_MISMATCH


def test_size_limit(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m.onnx", [1.0], 0.0)
    with pytest.raises(LoadError) as exc:
        read_verified(model, _entry(model).sha256, max_bytes=10)
    assert exc.value.code is ReasonCode.POLICY_DENY


@pytest.mark.parametrize("name,fmt", [("m.pt", "pt"), ("m.pkl", None), ("m.pth", "pytorch")])
def test_pickle_refused_without_opt_in(tmp_path: Path, name: str, fmt: str | None) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x80\x04\x95\x00")  # a pickle protocol header: never unpickled
    with pytest.raises(LoadError) as exc:
        load_verified(ModelLayout.from_path(path), [_entry(path)], fmt)
    assert exc.value.code is ReasonCode.POLICY_DENY
    assert "pickle" in exc.value.message and "allow_pickle" in exc.value.message


def test_pickle_opt_in_still_needs_a_loader(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(b"not torch")
    with pytest.raises(LoadError) as exc:
        load_verified(ModelLayout.from_path(path), [_entry(path)], "pt", allow_pickle=True)
    assert exc.value.code is ReasonCode.POLICY_DENY
    assert "torch" in exc.value.message


def test_directory_model_loads_its_onnx(tmp_path: Path) -> None:
    d = tmp_path / "model"
    d.mkdir()
    write_model(d / "model.onnx", [0.5, 0.5], 0.0)
    (d / "README.md").write_text("card")
    layout = ModelLayout.from_path(d)
    files = [_entry(d / "model.onnx", "model.onnx"), _entry(d / "README.md", "README.md")]
    loaded = load_verified(layout, files, None)
    assert loaded.format == "onnx"


def test_unknown_format_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.xyz"
    path.write_bytes(b"abc")
    with pytest.raises(LoadError) as exc:
        load_verified(ModelLayout.from_path(path), [_entry(path)], None)
    assert exc.value.code is ReasonCode.POLICY_DENY


def test_garbage_onnx_is_a_denial_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(LoadError) as exc:
        load_verified(ModelLayout.from_path(path), [_entry(path)], "onnx")
    assert exc.value.code is ReasonCode.POLICY_DENY


def _safetensors(tensors: dict[str, np.ndarray]) -> bytes:
    header: dict[str, object] = {}
    body = b""
    for name, arr in tensors.items():
        raw = arr.astype("<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(arr.shape),
            "data_offsets": [len(body), len(body) + len(raw)],
        }
        body += raw
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


def test_safetensors_tensors_served(tmp_path: Path) -> None:
    path = tmp_path / "emb.safetensors"
    path.write_bytes(_safetensors({"emb": np.arange(6, dtype=np.float32).reshape(2, 3)}))
    loaded = load_verified(ModelLayout.from_path(path), [_entry(path)], "safetensors")
    assert loaded.outputs[0].name == "emb" and loaded.outputs[0].shape == (2, 3)
    assert loaded.infer({})["emb"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_safetensors_out_of_bounds_refused(tmp_path: Path) -> None:
    h = json.dumps({"t": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"\x00" * 8)
    with pytest.raises(LoadError) as exc:
        load_verified(ModelLayout.from_path(path), [_entry(path)], "safetensors")
    assert exc.value.code is ReasonCode.POLICY_DENY
