"""The signature check over digests computed during the download (``layout.known``).

With a fact that still describes the file, the check does not open (so cannot read)
the model file at all; a fact that disagrees with the signature, or no longer
describes the file, can only make the check fail with SIGNATURE_INVALID.
"""

from __future__ import annotations

import builtins
import io
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.crypto.helpers import NOW
from trustload.checks.signature import check_model_signature
from trustload.decision import ReasonCode
from trustload.digests import ModelLayout
from trustload.facts import TrustAnchors
from trustload.signing import sign_model
from trustload.streamhash import Digester, KnownDigests

SHARD = 3000


def fact_of(path: Path, shard_size: int | None) -> KnownDigests:
    """What the cache records after streaming ``path``'s bytes to disk."""
    dig = Digester(shard_size)
    dig.update(path.read_bytes())
    return dig.fact(path, os.lstat(path))


@pytest.fixture()
def opens(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every path opened through ``os.open`` or ``open()`` while the test runs."""
    seen: list[str] = []
    real_os_open, real_open = os.open, builtins.open

    def os_open(path: Any, *args: Any, **kw: Any) -> int:
        seen.append(os.fspath(path))
        return real_os_open(path, *args, **kw)

    def py_open(file: Any, *args: Any, **kw: Any) -> Any:
        if not isinstance(file, int):
            seen.append(os.fspath(file))
        return real_open(file, *args, **kw)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", py_open)
    monkeypatch.setattr(io, "open", py_open)
    yield seen


@pytest.fixture()
def sharded(model_file: Path, keypair: tuple[Path, Path]) -> tuple[Path, bytes, TrustAnchors]:
    """A shard-mode signature (opt-in for trustload; model-signing's signers use it)."""
    key, pub = keypair
    model_file.write_bytes(os.urandom(10_000))
    sig = sign_model(model_file, key, shard_size=SHARD).read_bytes()
    return model_file, sig, TrustAnchors(public_keys=(pub.read_bytes(),))


def test_single_file_signature_with_the_download_digest_reads_nothing(
    model_file: Path, keypair: tuple[Path, Path], opens: list[str]
) -> None:
    """trustload's default: files mode, so the whole-file fact (no shards) suffices."""
    key, pub = keypair
    model_file.write_bytes(os.urandom(10_000))
    sig = sign_model(model_file, key).read_bytes()
    fact = fact_of(model_file, None)
    opens.clear()
    anchors = TrustAnchors(public_keys=(pub.read_bytes(),))
    out = check_model_signature(layout_with(model_file, fact), sig, anchors, now=NOW)
    assert out.result.ok, out.result.detail
    assert out.result.detail.startswith("files mode, 1 resources")
    assert str(model_file) not in opens
    wrong = replace(fact, sha256="0" * 64)
    out = check_model_signature(layout_with(model_file, wrong), sig, anchors, now=NOW)
    assert out.result.code is ReasonCode.SIGNATURE_INVALID


def layout_with(path: Path, *facts: KnownDigests) -> ModelLayout:
    return replace(ModelLayout.from_path(path), known=facts)


def test_shard_signature_with_facts_reads_nothing(
    sharded: tuple[Path, bytes, TrustAnchors], opens: list[str]
) -> None:
    model, sig, anchors = sharded
    layout = layout_with(model, fact_of(model, SHARD))
    opens.clear()
    out = check_model_signature(layout, sig, anchors, now=NOW)
    assert out.result.ok, out.result.detail
    assert str(model) not in opens
    # The whole-file digest comes from the fact, for the engine's digest pin.
    assert out.files is not None and out.files[0].sha256 == fact_of(model, None).sha256
    # Without the fact the same check reads the file (the counter does see reads).
    out = check_model_signature(ModelLayout.from_path(model), sig, anchors, now=NOW)
    assert out.result.ok and str(model) in opens


def test_files_signature_with_facts_reads_nothing(
    model_dir: Path, keypair: tuple[Path, Path], opens: list[str]
) -> None:
    key, pub = keypair
    sig = sign_model(model_dir, key).read_bytes()
    plain = ModelLayout.from_path(model_dir)
    layout = replace(plain, known=tuple(fact_of(where, None) for _, where in plain.files))
    opens.clear()
    out = check_model_signature(layout, sig, TrustAnchors(public_keys=(pub.read_bytes(),)), now=NOW)
    assert out.result.ok, out.result.detail
    assert not {str(where) for _, where in plain.files} & set(opens)


def test_fact_disagreeing_with_the_signature_fails(
    sharded: tuple[Path, bytes, TrustAnchors],
) -> None:
    model, sig, anchors = sharded
    good = fact_of(model, SHARD)
    wrong = replace(good, shards=(good.shards[0], "0" * 64, *good.shards[2:]))
    out = check_model_signature(layout_with(model, wrong), sig, anchors, now=NOW)
    assert out.result.code is ReasonCode.SIGNATURE_INVALID
    assert ":3000:6000" in out.result.detail


def test_fact_of_other_bytes_never_passes_tampered_file(
    sharded: tuple[Path, bytes, TrustAnchors],
) -> None:
    """The attack the trust boundary is about: the file is changed after the download
    hashed it, while the (correct) fact for the signed bytes is still held. The file's
    identity moved, so the fact is ignored and the tampered bytes are hashed."""
    model, sig, anchors = sharded
    fact = fact_of(model, SHARD)
    data = bytearray(model.read_bytes())
    data[5000] ^= 1
    with model.open("r+b") as fh:  # in place: same inode, same size
        fh.write(bytes(data))
    out = check_model_signature(layout_with(model, fact), sig, anchors, now=NOW)
    assert out.result.code is ReasonCode.SIGNATURE_INVALID
    assert ":3000:6000" in out.result.detail


def test_fact_with_other_shard_size_falls_back_to_hashing(
    sharded: tuple[Path, bytes, TrustAnchors], opens: list[str]
) -> None:
    model, sig, anchors = sharded
    layout = layout_with(model, fact_of(model, 4096))  # not the signed shard size
    opens.clear()
    out = check_model_signature(layout, sig, anchors, now=NOW)
    assert out.result.ok, out.result.detail
    assert str(model) in opens


def test_shard_coverage_is_checked_against_the_fact(
    sharded: tuple[Path, bytes, TrustAnchors],
) -> None:
    """A fact's size is the file's size: shards that do not cover it fail."""
    model, sig, anchors = sharded
    fact = fact_of(model, SHARD)
    longer = replace(fact, identity=replace(fact.identity, size=fact.size + 1))
    # The identity no longer matches the file, so the file is read: still valid bytes.
    assert check_model_signature(layout_with(model, longer), sig, anchors, now=NOW).result.ok
    with model.open("ab") as fh:
        fh.write(b"x")
    out = check_model_signature(layout_with(model, fact_of(model, SHARD)), sig, anchors, now=NOW)
    assert out.result.code is ReasonCode.SIGNATURE_INVALID
    assert "do not cover" in out.result.detail
