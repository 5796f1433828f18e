"""The content-addressed cache against real TLS servers that misbehave on purpose:
over-long bodies, short bodies, dropped connections, ignored Range, tampered copies."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

import pytest

from tests.client.tlsserver import Handler
from trustload.cache import BlobCache
from trustload.client.api import RegistryClient
from trustload.client.transport import Transport
from trustload.decision import ReasonCode
from trustload.errors import TrustloadError

DATA = os.urandom(300_000)
HEX = hashlib.sha256(DATA).hexdigest()
DIGEST = f"sha256:{HEX}"
BLOB = rf"/v1/blobs/sha256/{HEX}"
LIMIT = 10 * 1024 * 1024


def client_for(cfg) -> RegistryClient:  # type: ignore[no-untyped-def]
    return RegistryClient(cfg, transport=Transport(cfg, sleep=lambda d: None))


def blob_requests(srv) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    return [h for _, path, h in srv.requests if path.startswith("/v1/blobs/")]


@pytest.fixture
def cache(tmp_path: Path) -> BlobCache:
    return BlobCache(tmp_path / "cache", progress=False)


def test_download_lands_verified_under_its_digest(tls_server, client_cfg, cache):
    srv = tls_server(routes=[(BLOB, lambda h: h.send_blob(DATA))])
    with client_for(client_cfg(srv.url)) as client:
        res = cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
        assert res.fetched and not res.evicted
        assert res.path == cache.root / "blobs" / "sha256" / HEX
        assert res.path.read_bytes() == DATA
        assert not any(p.name.endswith(".partial") for p in res.path.parent.iterdir())
        again = cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
        assert not again.fetched and again.path == res.path
    assert len(blob_requests(srv)) == 1


def test_tampered_cached_copy_is_evicted_and_fetched_again(tls_server, client_cfg, cache):
    srv = tls_server(routes=[(BLOB, lambda h: h.send_blob(DATA))])
    with client_for(client_cfg(srv.url)) as client:
        res = cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
        os.chmod(res.path, 0o644)
        with res.path.open("r+b") as fh:
            fh.seek(1000)
            byte = fh.read(1)
            fh.seek(1000)
            fh.write(bytes([byte[0] ^ 1]))
        again = cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert again.evicted and again.fetched
    assert again.path.read_bytes() == DATA
    assert len(blob_requests(srv)) == 2


def test_tampered_cache_and_bad_registry_copy_is_digest_mismatch(tls_server, client_cfg, cache):
    bad = bytearray(DATA)
    bad[5] ^= 1
    srv = tls_server(routes=[(BLOB, lambda h: h.send_blob(DATA))])
    with client_for(client_cfg(srv.url)) as client:
        res = cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
        os.chmod(res.path, 0o644)
        res.path.write_bytes(bytes(bad))
        srv.route(BLOB, lambda h: h.send_blob(bytes(bad)))
        with pytest.raises(TrustloadError) as err:
            cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert err.value.code is ReasonCode.DIGEST_MISMATCH
    assert not res.path.exists()
    assert list(res.path.parent.iterdir()) == []


def test_registry_serving_wrong_bytes_is_digest_mismatch(tls_server, client_cfg, cache):
    bad = bytearray(DATA)
    bad[-1] ^= 0x80
    srv = tls_server(routes=[(BLOB, lambda h: h.send_blob(bytes(bad)))])
    with client_for(client_cfg(srv.url)) as client, pytest.raises(TrustloadError) as err:
        cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert err.value.code is ReasonCode.DIGEST_MISMATCH
    assert not cache.path_for(DIGEST).exists()


def test_body_longer_than_recorded_size_is_refused(tls_server, client_cfg, cache):
    srv = tls_server(routes=[(BLOB, lambda h: h.send_blob(DATA + b"extra bytes"))])
    with client_for(client_cfg(srv.url)) as client, pytest.raises(TrustloadError) as err:
        cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert err.value.code is ReasonCode.DIGEST_MISMATCH
    assert "more than" in err.value.message


def _endless(handler: Handler) -> None:
    """No Content-Length: the body runs until the connection closes, past any size."""
    handler.send_response(200)
    handler.send_header("Connection", "close")
    handler.end_headers()
    for _ in range(40):
        handler.wfile.write(DATA[:65536])
    handler.close_connection = True


def test_unannounced_overlong_body_is_cut_at_the_recorded_size(tls_server, client_cfg, cache):
    srv = tls_server(routes=[(BLOB, _endless)])
    with client_for(client_cfg(srv.url)) as client, pytest.raises(TrustloadError) as err:
        cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert err.value.code is ReasonCode.DIGEST_MISMATCH
    assert list(cache.blobs.iterdir()) == []


def test_unsized_evidence_blob_is_bounded_by_limit(tls_server, client_cfg, cache):
    srv = tls_server(routes=[(BLOB, _endless)])
    with client_for(client_cfg(srv.url)) as client, pytest.raises(TrustloadError) as err:
        cache.ensure(client, DIGEST, None, limit=100_000)
    assert err.value.code is ReasonCode.DIGEST_MISMATCH


def test_complete_but_short_body_is_digest_mismatch(tls_server, client_cfg, cache):
    srv = tls_server(routes=[(BLOB, lambda h: h.send_blob(DATA[:-10]))])
    with client_for(client_cfg(srv.url)) as client, pytest.raises(TrustloadError) as err:
        cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert err.value.code is ReasonCode.DIGEST_MISMATCH


def test_truncated_connection_every_time_is_unavailable_and_kept_for_resume(
    tls_server, client_cfg, cache
):
    srv = tls_server(routes=[(BLOB, lambda h: h.send_truncated(DATA, 50_000))])
    cfg = client_cfg(srv.url, retries=1)
    with client_for(cfg) as client, pytest.raises(TrustloadError) as err:
        cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert err.value.code is ReasonCode.REGISTRY_UNAVAILABLE
    assert not cache.path_for(DIGEST).exists()
    partial = cache.blobs / f".{HEX}.partial"
    assert partial.stat().st_size == 100_000  # two attempts of 50 000 bytes each
    # A later run resumes from byte 100 000 with Range and completes.
    srv.route(BLOB, lambda h: h.send_blob(DATA))
    with client_for(cfg) as client:
        res = cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert res.fetched and res.resumed_from == 100_000
    assert res.path.read_bytes() == DATA
    assert blob_requests(srv)[-1].get("Range") == "bytes=100000-"


def cut_once(cut: int, *, ranges: bool = True):  # type: ignore[no-untyped-def]
    """A handler whose first answer breaks off after ``cut`` bytes; later ones are whole
    (honouring ``Range`` unless ``ranges`` is False)."""
    calls = {"n": 0}

    def flaky(h: Handler) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            h.send_truncated(DATA, cut)
        else:
            h.send_blob(DATA, ranges=ranges)

    return flaky


def test_interrupted_download_is_resumed_with_range(tls_server, client_cfg, cache):
    srv = tls_server(routes=[(BLOB, cut_once(120_000))])
    with client_for(client_cfg(srv.url)) as client:
        res = cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert res.path.read_bytes() == DATA
    ranges = [h.get("Range") for h in blob_requests(srv)]
    assert ranges == [None, "bytes=120000-"]


def test_server_ignoring_range_restarts_from_zero(tls_server, client_cfg, cache):
    srv = tls_server(routes=[(BLOB, cut_once(70_000, ranges=False))])
    with client_for(client_cfg(srv.url)) as client:
        res = cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert res.path.read_bytes() == DATA


def test_bad_content_range_is_refused(tls_server, client_cfg, cache):
    calls = {"n": 0}

    def liar(h: Handler) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            h.send_truncated(DATA, 70_000)
            return
        h.send_response(206)
        h.send_header("Content-Range", f"bytes 0-{len(DATA) - 1}/{len(DATA)}")
        h.send_header("Content-Length", str(len(DATA)))
        h.end_headers()
        h.wfile.write(DATA)

    srv = tls_server(routes=[(BLOB, liar)])
    cfg = client_cfg(srv.url, retries=1)
    with client_for(cfg) as client, pytest.raises(TrustloadError) as err:
        cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert err.value.code in (ReasonCode.REGISTRY_UNAVAILABLE, ReasonCode.DIGEST_MISMATCH)
    assert not cache.path_for(DIGEST).exists()


def test_recorded_size_above_limit_is_refused_before_download(tls_server, client_cfg, cache):
    srv = tls_server(routes=[(BLOB, lambda h: h.send_blob(DATA))])
    with client_for(client_cfg(srv.url)) as client, pytest.raises(TrustloadError):
        cache.ensure(client, DIGEST, len(DATA), limit=1000)
    assert blob_requests(srv) == []


def test_two_gates_share_one_cache_dir(tls_server, client_cfg, tmp_path):
    big = os.urandom(4 * 1024 * 1024)
    hexd = hashlib.sha256(big).hexdigest()
    srv = tls_server(routes=[(rf"/v1/blobs/sha256/{hexd}", lambda h: h.send_blob(big))])
    cfg = client_cfg(srv.url)
    results: list[object] = []

    def one() -> None:
        with client_for(cfg) as client:
            cache = BlobCache(tmp_path / "shared", progress=False)
            results.append(cache.ensure(client, f"sha256:{hexd}", len(big), limit=LIMIT))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 4
    assert sum(r.fetched for r in results) == 1  # type: ignore[attr-defined]
    assert len(blob_requests(srv)) == 1


def test_progress_bar_path_runs(tls_server, client_cfg, tmp_path):
    big = os.urandom(9 * 1024 * 1024)
    hexd = hashlib.sha256(big).hexdigest()
    srv = tls_server(routes=[(rf"/v1/blobs/sha256/{hexd}", lambda h: h.send_blob(big))])
    cache = BlobCache(tmp_path / "c", progress=True)
    with client_for(client_cfg(srv.url)) as client:
        res = cache.ensure(client, f"sha256:{hexd}", len(big), limit=LIMIT * 2, label="big")
    assert hashlib.sha256(res.path.read_bytes()).hexdigest() == hexd
    assert re.fullmatch(r"[0-9a-f]{64}", res.path.name)


def test_bad_leftover_partial_is_discarded_and_fetched_from_zero(tls_server, client_cfg, cache):
    srv = tls_server(routes=[(BLOB, lambda h: h.send_blob(DATA))])
    cache.blobs.mkdir(parents=True)
    (cache.blobs / f".{HEX}.partial").write_bytes(b"\x00" * 1000)  # not DATA's prefix
    with client_for(client_cfg(srv.url)) as client:
        res = cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert res.path.read_bytes() == DATA and res.resumed_from == 0
    assert [h.get("Range") for h in blob_requests(srv)] == ["bytes=1000-", None]


def test_blob_redirect_off_the_allowlist_is_refused(tls_server, client_cfg, cache):
    other = tls_server(routes=[(BLOB, lambda h: h.send_blob(DATA))])
    srv = tls_server()
    elsewhere = other.url.replace("127.0.0.1", "localhost")
    srv.route(BLOB, lambda h: h.redirect(f"{elsewhere}/v1/blobs/sha256/{HEX}"))
    with client_for(client_cfg(srv.url)) as client, pytest.raises(TrustloadError) as err:
        cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert err.value.code is ReasonCode.REGISTRY_NOT_ALLOWED
    assert other.requests == []


def test_blob_redirect_within_allowlist_is_followed(tls_server, client_cfg, cache):
    srv = tls_server(routes=[(r"/mirror/blob", lambda h: h.send_blob(DATA))])
    srv.route(BLOB, lambda h: h.redirect("/mirror/blob", 307))
    with client_for(client_cfg(srv.url)) as client:
        assert cache.ensure(client, DIGEST, len(DATA), limit=LIMIT).path.read_bytes() == DATA


def test_missing_blob_is_not_found(tls_server, client_cfg, cache):
    srv = tls_server()
    with client_for(client_cfg(srv.url)) as client, pytest.raises(TrustloadError) as err:
        cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert err.value.code is ReasonCode.NOT_FOUND


def test_blob_without_client_certificate_is_auth_failed(tls_server, client_cfg, cache, pki):
    from trustload.client.transport import build_ssl_context

    srv = tls_server(routes=[(BLOB, lambda h: h.send_blob(DATA))])
    cfg = client_cfg(srv.url)
    client = RegistryClient(cfg, ssl_context=build_ssl_context(pki.ca.pem, None, None))
    with client, pytest.raises(TrustloadError) as err:
        cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert err.value.code is ReasonCode.AUTH_FAILED


def test_quick_path_hands_on_same_size_copies_and_refetches_wrong_sizes(
    tls_server, client_cfg, cache
):
    srv = tls_server(routes=[(BLOB, lambda h: h.send_blob(DATA))])
    with client_for(client_cfg(srv.url)) as client:
        first = cache.ensure(client, DIGEST, len(DATA), limit=LIMIT, reverify=False)
        assert first.fetched and first.hashed  # a download is always hashed
        quick = cache.ensure(client, DIGEST, len(DATA), limit=LIMIT, reverify=False)
        assert not quick.fetched and not quick.hashed  # the caller hashes these bytes
        os.chmod(first.path, 0o644)
        first.path.write_bytes(DATA[:-1])  # truncated: not even the right size
        again = cache.ensure(client, DIGEST, len(DATA), limit=LIMIT, reverify=False)
        assert again.evicted and again.fetched and again.path.read_bytes() == DATA
    assert len(blob_requests(srv)) == 2


# ------------------------------------------------- digests computed in the same pass
SHARD = 64 * 1024  # DATA is 300 000 bytes: four whole shards and a partial one


def reference_shards(data: bytes) -> tuple[str, ...]:
    return tuple(
        hashlib.sha256(data[s : s + SHARD]).hexdigest() for s in range(0, len(data), SHARD)
    )


@pytest.fixture
def shard_cache(tmp_path: Path) -> BlobCache:
    return BlobCache(tmp_path / "cache", progress=False, shard_plan=lambda size: SHARD)


def assert_fact_is_of(res, data: bytes) -> None:  # type: ignore[no-untyped-def]
    assert res.known is not None and res.known.describes(res.path)
    assert res.known.path == res.path and res.known.size == len(data)
    assert res.known.sha256 == hashlib.sha256(data).hexdigest()
    assert res.known.shards == reference_shards(data)


def test_download_hands_on_the_shard_digests_of_the_bytes_written(
    tls_server, client_cfg, shard_cache
):
    srv = tls_server(routes=[(BLOB, lambda h: h.send_blob(DATA))])
    with client_for(client_cfg(srv.url)) as client:
        res = shard_cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
        assert res.fetched
        assert_fact_is_of(res, DATA)
        # A re-verified cached copy: the same digests, from the one read that checks it.
        again = shard_cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
        assert not again.fetched
        assert_fact_is_of(again, DATA)
        # Handed on unhashed (quick path): no fact, the caller hashes those bytes.
        quick = shard_cache.ensure(client, DIGEST, len(DATA), limit=LIMIT, reverify=False)
        assert not quick.hashed and quick.known is None


@pytest.mark.parametrize("cut", [SHARD - 1, SHARD, 2 * SHARD + 1, 120_000])
def test_resumed_download_digests_cover_prefix_and_rest(tls_server, client_cfg, shard_cache, cut):
    """Cut mid-shard or on a boundary: the prefix kept on disk is re-read into the
    same digests, the rest streams in, and the shards are still the reference ones."""
    srv = tls_server(routes=[(BLOB, cut_once(cut))])
    with client_for(client_cfg(srv.url)) as client:
        res = shard_cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert [h.get("Range") for h in blob_requests(srv)] == [None, f"bytes={cut}-"]
    assert_fact_is_of(res, DATA)


def test_restart_from_zero_resets_the_shard_digests(tls_server, client_cfg, shard_cache):
    srv = tls_server(routes=[(BLOB, cut_once(70_000, ranges=False))])
    with client_for(client_cfg(srv.url)) as client:
        res = shard_cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
    assert_fact_is_of(res, DATA)


def test_tampered_copy_gives_no_fact_and_the_refetch_gives_a_true_one(
    tls_server, client_cfg, shard_cache
):
    srv = tls_server(routes=[(BLOB, lambda h: h.send_blob(DATA))])
    with client_for(client_cfg(srv.url)) as client:
        res = shard_cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
        os.chmod(res.path, 0o644)
        with res.path.open("r+b") as fh:
            fh.seek(SHARD + 5)
            fh.write(bytes([DATA[SHARD + 5] ^ 1]))
        assert res.known is not None and not res.known.describes(res.path)
        assert shard_cache.verify_cached(DIGEST, len(DATA)) is None
        again = shard_cache.ensure(client, DIGEST, len(DATA), limit=LIMIT)
        assert again.evicted and again.fetched
        assert_fact_is_of(again, DATA)
