"""One pass over the bytes, end to end: a real Registry over mTLS, a model signed in
shard mode. A cold gate hashes each model byte once, while it downloads; the checks
use those digests and never open the cached model file. A blob changed on disk after
the download is judged by its bytes, not by the digests of the bytes that arrived."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gate.conftest import World, codes
from trustload.cache import BlobCache, BlobResult
from trustload.digests import parse_digest

pytestmark = pytest.mark.postgres_ok

SHARD = 16 * 1024


@pytest.fixture
def sharded(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """Small shard rules for signing *and* for the cache's shard plan (the same rule)."""
    import trustload.signing as signing
    import trustload.streamhash as streamhash

    for module in (signing, streamhash):
        monkeypatch.setattr(module, "SHARD_THRESHOLD", 4096)
        monkeypatch.setattr(module, "SHARD_SIZE", SHARD)
    world.publish("big", "1", world.model_file(data=os.urandom(5 * SHARD + 123)))
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


def test_cold_gate_never_reopens_the_model(sharded: World, opens: list[str]) -> None:
    result = sharded.gate("big@production")
    assert result.decision.permitted, result.decision.to_json()
    assert result.record is not None
    sig = next(c for c in result.decision.checks if c.name == "signature")
    assert sig.detail.startswith("shards mode, 6 resources")
    blob = str(blob_of(sharded, result.record.artifact_digest))
    assert blob not in opens  # downloaded as .<hex>.partial, then never opened again
    assert any(p.endswith(f".{parse_digest(result.record.artifact_digest)}.partial") for p in opens)
    # A warm start has no download to take digests from: the cached bytes are hashed.
    opens.clear()
    warm = sharded.gate("big@production")
    assert warm.decision.permitted and blob in opens


def test_blob_changed_after_download_is_judged_by_its_bytes(
    sharded: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker who can write the cache acts right after the download, while the
    gate holds the (true) digests of the bytes that arrived."""
    real = BlobCache.ensure

    def ensure_then_tamper(self: BlobCache, *args: Any, **kw: Any) -> BlobResult:
        res = real(self, *args, **kw)
        if res.size > 5 * SHARD:  # the model file, not evidence
            os.chmod(res.path, 0o644)
            with res.path.open("r+b") as fh:
                fh.seek(2 * SHARD + 7)
                byte = fh.read(1)
                fh.seek(2 * SHARD + 7)
                fh.write(bytes([byte[0] ^ 1]))
        return res

    monkeypatch.setattr(BlobCache, "ensure", ensure_then_tamper)
    result = sharded.gate("big@production")
    assert not result.decision.permitted
    assert {"DIGEST_MISMATCH", "SIGNATURE_INVALID"} <= set(codes(result))
    sig = next(c for c in result.decision.checks if c.name == "signature")
    assert f":{2 * SHARD}:{3 * SHARD}" in sig.detail
