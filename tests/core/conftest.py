"""Real keys, real signed models and attestations for the engine tests (module-scoped)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from tests.core.builders import NOW

GIT = "0123456789abcdef0123456789abcdef01234567"
CONTAINER = "sha256:" + "c" * 64
DATASET = "snap-2026-11"


@dataclass(frozen=True)
class Signed:
    root: Path
    model: Path  # a single file
    signature: Path
    attestation: Path
    pub: Path
    key: Path
    other_pub: Path
    directory: Path
    dir_signature: Path
    dir_attestation: Path
    digest: str
    dir_digest: str


@pytest.fixture(scope="session")
def signed(tmp_path_factory) -> Signed:
    from trustload.crypto.keys import generate_keypair
    from trustload.digests import measure
    from trustload.signing import attest, sign_model

    root = tmp_path_factory.mktemp("signed")
    key, pub = generate_keypair(root / "pub")
    _, other_pub = generate_keypair(root / "other")
    model = root / "model.onnx"
    model.write_bytes(bytes(range(256)) * 400)
    sig = sign_model(model, key)
    window = {"not_before": NOW - timedelta(days=1), "not_after": NOW + timedelta(days=30)}
    att = attest(
        model,
        key,
        git_sha=GIT,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
        out=root / "model.att.json",
        **window,
    )
    directory = root / "dirmodel"
    (directory / "sub").mkdir(parents=True)
    (directory / "config.json").write_text('{"layers": 2}')
    (directory / "weights.bin").write_bytes(b"\x01\x02" * 5000)
    (directory / "sub" / "tokenizer.txt").write_text("a b c\n")
    dir_sig = sign_model(directory, key, out=root / "dirmodel.sig")
    dir_att = attest(
        directory,
        key,
        git_sha=GIT,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
        out=root / "dirmodel.att.json",
        **window,
    )
    return Signed(
        root=root,
        model=model,
        signature=sig,
        attestation=att,
        pub=pub,
        key=key,
        other_pub=other_pub,
        directory=directory,
        dir_signature=dir_sig,
        dir_attestation=dir_att,
        digest=measure(model).digest,
        dir_digest=measure(directory).digest,
    )
