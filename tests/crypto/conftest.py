"""Fixtures for the crypto tests: a fresh key pair and small models under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustload.crypto.keys import generate_keypair


@pytest.fixture()
def keypair(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "signing")


@pytest.fixture()
def other_keypair(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "other")


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "models" / "resnet"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "model.onnx").write_bytes(b"\x08\x07" + bytes(range(256)) * 64)
    (root / "config.json").write_text('{"layers": 3}')
    (root / "sub" / "weights.bin").write_bytes(b"w" * 10_000)
    (root / "sub" / "deep" / "vocab.txt").write_text("a\nb\n")
    (root / "a-b").write_text("ordering: '-' sorts before '/' bytewise")
    return root


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    p = tmp_path / "single" / "model.safetensors"
    p.parent.mkdir()
    p.write_bytes(b"\x00" * 1000 + b"tail")
    return p
