"""One pass over the bytes, end to end: a real Registry over mTLS. trustload signs in
files mode, so the signature's digest is the whole-file SHA-256 the download computes:
a cold gate hashes each model byte once, while it downloads; the checks use that digest
and never open the cached model file. A shard-mode signature (another signer) still
permits: the check hashes the shards after the download, or takes them from the same
pass when the cache is told the shard size. A blob changed on disk after the download
is judged by its bytes, not by the digests of the bytes that arrived."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from functools import partialmethod
from pathlib import Path
from typing import Any

import pytest

from tests.gate.conftest import World, codes
from trustload.cache import BlobCache, BlobResult
from trustload.digests import parse_digest
from trustload.gate import GateResult

pytestmark = pytest.mark.postgres_ok

SHARD = 16 * 1024
SIZE = 5 * SHARD + 123


@pytest.fixture
def published(world: World) -> World:
    """trustload's own signer, default rules: files mode."""
    world.publish("big", "1", world.model_file(data=os.urandom(SIZE)))
    world.release_to_prod("big", "1")
    return world


@pytest.fixture
def sharded(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """Published with a shard-mode signature (as model-signing's CLI writes them)."""
    import trustload.signing as signing

    with monkeypatch.context() as m:
        m.setattr(
            signing,
            "sign_layout_bundle",
            functools.partial(signing.sign_layout_bundle, shard_size=SHARD),
        )
        world.publish("big", "1", world.model_file(data=os.urandom(SIZE)))
    world.release_to_prod("big", "1")
    return world


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    seen: list[str] = []
    real = os.open

    def counting(path: Any, *args: Any, **kw: Any) -> int:
        seen.append(os.fspath(path))
        return real(path, *args, **kw)

    monkeypatch.setattr(os, "open", counting)
    yield seen


def blob_of(world: World, digest: str) -> Path:
    return BlobCache(world.gate_cfg.gate.cache_dir).path_for(digest)


def model_blob_opened(world: World, opens: list[str]) -> tuple[GateResult, bool]:
    result = world.gate("big@production")
    assert result.decision.permitted, result.decision.to_json()
    assert result.record is not None
    blob = str(blob_of(world, result.record.artifact_digest))
    partial = f".{parse_digest(result.record.artifact_digest)}.partial"
    assert any(p.endswith(partial) for p in opens)  # it was downloaded, in this gate
    return result, blob in opens


def test_cold_gate_never_reopens_the_model(published: World, opens: list[str]) -> None:
    result, reopened = model_blob_opened(published, opens)
    sig = next(c for c in result.decision.checks if c.name == "signature")
    assert sig.detail.startswith("files mode, 1 resources")
    assert not reopened  # downloaded as .<hex>.partial, then never opened again
    # A warm start has no download to take digests from: the cached bytes are hashed.
    opens.clear()
    warm = published.gate("big@production")
    assert warm.decision.permitted
    assert warm.record is not None
    assert str(blob_of(published, warm.record.artifact_digest)) in opens


def test_shard_signature_is_hashed_after_the_download(sharded: World, opens: list[str]) -> None:
    """The default cache plans no shard digests: the signature check reads the blob."""
    result, reopened = model_blob_opened(sharded, opens)
    sig = next(c for c in result.decision.checks if c.name == "signature")
    assert sig.detail.startswith("shards mode, 6 resources")
    assert reopened


def test_shard_signature_with_a_shard_plan_is_one_pass(
    sharded: World, opens: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache told the shard size computes those digests in the download's pass."""
    init = partialmethod(BlobCache.__init__, shard_plan=lambda size: SHARD)
    monkeypatch.setattr(BlobCache, "__init__", init)
    result, reopened = model_blob_opened(sharded, opens)
    sig = next(c for c in result.decision.checks if c.name == "signature")
    assert sig.detail.startswith("shards mode, 6 resources")
    assert not reopened


@pytest.mark.parametrize("signed", ["published", "sharded"])
def test_blob_changed_after_download_is_judged_by_its_bytes(
    signed: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker who can write the cache acts right after the download, while the
    gate holds the (true) digests of the bytes that arrived."""
    real = BlobCache.ensure

    def ensure_then_tamper(self: BlobCache, *args: Any, **kw: Any) -> BlobResult:
        res = real(self, *args, **kw)
        if res.size == SIZE:  # the model file, not evidence
            os.chmod(res.path, 0o644)
            with res.path.open("r+b") as fh:
                fh.seek(2 * SHARD + 7)
                byte = fh.read(1)
                fh.seek(2 * SHARD + 7)
                fh.write(bytes([byte[0] ^ 1]))
        return res

    world: World = request.getfixturevalue(signed)
    if signed == "sharded":  # the shard digests of the arrived bytes are held too
        init = partialmethod(BlobCache.__init__, shard_plan=lambda size: SHARD)
        monkeypatch.setattr(BlobCache, "__init__", init)
    monkeypatch.setattr(BlobCache, "ensure", ensure_then_tamper)
    result = world.gate("big@production")
    assert not result.decision.permitted
    assert {"DIGEST_MISMATCH", "SIGNATURE_INVALID"} <= set(codes(result))
    sig = next(c for c in result.decision.checks if c.name == "signature")
    want = f":{2 * SHARD}:{3 * SHARD}" if signed == "sharded" else "content differs"
    assert want in sig.detail
