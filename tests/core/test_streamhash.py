"""One pass over the bytes: the digests computed while streaming equal the reference.

trustload signs in files mode, so a download needs only the whole-file SHA-256; for a
shard-mode signer's shard size, the shard digests the cache computes while a download
streams must be exactly those model-signing's own shard serializer computes from the
file on disk, for every size around shard boundaries and however the stream is chunked.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_signing import hashing

from trustload.digests import ModelLayout
from trustload.streamhash import (
    Digester,
    FileIdentity,
    Pipeline,
    digest_fd,
    known_entries,
    shard_ranges,
    usable_facts,
)


def reference_shards(path: Path, shard_size: int) -> list[tuple[str, str]]:
    """model-signing 1.x: ``(resource name, sha256 hex)`` per shard of one file."""
    manifest = hashing.Config().use_shard_serialization(shard_size=shard_size).hash(path)
    return [(r.identifier, r.digest.digest_hex) for r in manifest.resource_descriptors()]


@st.composite
def sized_around_boundaries(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """(shard size, file size near a multiple of it, chunk sizes to feed the stream in)."""
    shard = draw(st.integers(min_value=1, max_value=257))
    k = draw(st.integers(min_value=0, max_value=5))
    size = max(0, k * shard + draw(st.integers(min_value=-2, max_value=2)))
    chunks = draw(st.lists(st.integers(min_value=1, max_value=3 * shard + 7), max_size=40))
    return shard, size, chunks


def feed(dig: Digester, data: bytes, chunks: list[int], *, pipelined: bool) -> None:
    pipe = Pipeline(dig) if pipelined else None
    pos, i = 0, 0
    while pos < len(data):
        n = chunks[i % len(chunks)] if chunks else len(data)
        piece = memoryview(data)[pos : pos + n]
        if pipe is None:
            dig.update(piece)
        else:
            pipe.feed(bytes(piece))
        pos, i = pos + n, i + 1
    if pipe is not None:
        pipe.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sized_around_boundaries(), st.booleans())
def test_stream_shards_equal_model_signing(case: tuple[int, int, list[int]], piped: bool) -> None:
    shard, size, chunks = case
    data = os.urandom(size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.bin"
        path.write_bytes(data)
        dig = Digester(shard)
        feed(dig, data, chunks, pipelined=piped)
        fact = dig.fact(path, os.lstat(path))
        ref = reference_shards(path, shard)
    assert fact.sha256 == hashlib.sha256(data).hexdigest()
    assert [f".:{s}:{e}" for s, e in shard_ranges(size, shard)] == [name for name, _ in ref]
    assert list(fact.shards) == [digest for _, digest in ref]
    for (s, e), (_, want) in zip(shard_ranges(size, shard), ref, strict=True):
        assert fact.shard_digest(s, e) == want


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=64), st.integers(min_value=0, max_value=400))
def test_digest_fd_equals_streaming(shard: int, size: int) -> None:
    """Re-verifying a cached file (read back with pread) gives the same facts."""
    data = os.urandom(size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.bin"
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        try:
            dig = Digester(shard)
            assert digest_fd(dig, fd, size) == size
        finally:
            os.close(fd)
        streamed = Digester(shard)
        streamed.update(data)
        assert dig.shards() == streamed.shards()
        assert dig.hexdigest() == hashlib.sha256(data).hexdigest()


def test_shard_digest_only_for_exact_computed_ranges(tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_bytes(b"x" * 10)
    dig = Digester(4)
    dig.update(b"x" * 10)
    fact = dig.fact(path, os.lstat(path))
    assert fact.shard_digest(0, 4) == hashlib.sha256(b"xxxx").hexdigest()
    assert fact.shard_digest(8, 10) == hashlib.sha256(b"xx").hexdigest()
    # Another shard size's ranges are not known: the check must hash those itself.
    assert fact.shard_digest(0, 5) is None
    assert fact.shard_digest(2, 6) is None
    assert fact.shard_digest(8, 12) is None
    assert fact.shard_digest(12, 16) is None
    whole = Digester(None)
    whole.update(b"x" * 10)
    assert whole.fact(path, os.lstat(path)).shard_digest(0, 4) is None


def test_fact_stops_describing_a_file_that_changed(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"a" * 100)
    dig = Digester(None)
    dig.update(b"a" * 100)
    fact = dig.fact(path, os.lstat(path))
    layout = ModelLayout("file", "blob", (("blob", path),), known=(fact,))
    assert fact.describes(path) and set(usable_facts(layout)) == {"blob"}
    entries = known_entries(layout)
    assert entries is not None and entries[0].sha256 == hashlib.sha256(b"a" * 100).hexdigest()
    # Same size, written in place: mtime/ctime move, so the fact no longer holds.
    with path.open("r+b") as fh:
        fh.write(b"b")
    assert not fact.describes(path) and usable_facts(layout) == {}
    assert known_entries(layout) is None
    # Replaced by another file under the same name (new inode).
    other = tmp_path / "other"
    other.write_bytes(b"a" * 100)
    now = replace(fact, identity=FileIdentity.of(os.lstat(path)))
    os.replace(other, path)
    assert not now.describes(path)
    # A fact for another path never describes this one; nor does one for a symlink.
    assert not replace(now, path=tmp_path / "elsewhere").describes(path)
    link = tmp_path / "link"
    link.symlink_to(path)
    assert not replace(now, path=link, identity=FileIdentity.of(os.lstat(link))).describes(link)


def test_default_cache_plans_no_shard_digests(tmp_path: Path) -> None:
    """trustload signs in files mode: by default a cache computes the whole-file SHA-256
    alone (one hash pass); told a shard size, it adds that size's shard digests."""
    from trustload.cache import BlobCache

    data = os.urandom(10_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    plain = BlobCache(tmp_path / "a", progress=False)
    told = BlobCache(tmp_path / "b", progress=False, shard_plan=lambda size: 4096)
    for cache in (plain, told):
        cache.path_for(digest).parent.mkdir(parents=True)
        cache.path_for(digest).write_bytes(data)
    fact = plain.verify_cached(digest, len(data))
    assert fact is not None and fact.sha256 == digest.removeprefix("sha256:")
    assert fact.shard_size is None and fact.shards == ()
    sharded = told.verify_cached(digest, len(data))
    assert sharded is not None and sharded.sha256 == fact.sha256
    assert sharded.shards == tuple(
        hashlib.sha256(data[s:e]).hexdigest() for s, e in shard_ranges(len(data), 4096)
    )


def test_bad_shard_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        Digester(0)
    with pytest.raises(ValueError):
        shard_ranges(10, 0)


def test_pipeline_reports_a_hashing_failure() -> None:
    dig = Digester(4)

    def broken(_data: memoryview | bytes) -> None:
        raise OSError("boom")

    dig.update_shards = broken  # type: ignore[method-assign]
    pipe = Pipeline(dig)
    pipe.feed(b"abcdefgh")
    with pytest.raises(RuntimeError, match="hashing failed"):
        pipe.close()
