"""Blob store: verified-before-visible uploads, size bounds, Range downloads."""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import pytest

from tests.support.registry import make_test_env, publish_bytes, start_registry, upload_blob
from trustload.digests import FileEntry, manifest_bytes

pytestmark = pytest.mark.postgres_ok


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _store_listing(running) -> list[str]:
    root = running.data_dir / "blobs"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def published(shared_registry):
    data = os.urandom(300_000)
    name = f"b-{uuid.uuid4().hex[:10]}"
    with shared_registry.admin() as c:
        rec = publish_bytes(c, name, "1", data).json()
    return data, rec


def test_upload_with_wrong_digest_is_refused_and_invisible(shared_registry):
    before = _store_listing(shared_registry)
    data = b"claimed one thing, sent another"
    wrong = _hex(b"something else")
    with shared_registry.publisher() as c:
        resp = c.post(f"/v1/blobs/sha256/{wrong}", content=data)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BAD_REQUEST"
    assert "digest mismatch" in resp.json()["error"]["message"]
    assert _store_listing(shared_registry) == before
    assert not shared_registry.blob_path(wrong).exists()
    assert not shared_registry.blob_path(_hex(data)).exists()


def test_upload_then_reupload(shared_registry):
    data = os.urandom(70_000)
    with shared_registry.publisher() as c:
        first = c.post(f"/v1/blobs/sha256/{_hex(data)}", content=data)
        second = c.post(f"/v1/blobs/sha256/{_hex(data)}", content=data)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json() == {"digest": f"sha256:{_hex(data)}", "size": len(data)}
    assert shared_registry.blob_path(_hex(data)).read_bytes() == data


def test_streamed_upload_without_length_is_refused(shared_registry):
    def body():
        yield b"chunk"

    with shared_registry.publisher() as c:
        resp = c.post(f"/v1/blobs/sha256/{_hex(b'chunk')}", content=body())
    assert resp.status_code == 411


def test_bad_blob_names(shared_registry):
    with shared_registry.consumer() as c:
        assert c.get("/v1/blobs/sha256/ABC").status_code == 400
        assert c.get(f"/v1/blobs/sha256/{'0' * 64}").status_code == 404
        assert c.get("/v1/blobs/sha256/..%2F..%2Fregistry.db").status_code in (400, 404)


def test_download_full_and_ranges(shared_registry, published):
    data, rec = published
    hexdigest = rec["artifact_digest"].removeprefix("sha256:")
    url = f"/v1/blobs/sha256/{hexdigest}"
    with shared_registry.consumer() as c:
        full = c.get(url)
        assert full.status_code == 200 and full.content == data
        assert full.headers["etag"] == f'"sha256:{hexdigest}"'
        assert full.headers["accept-ranges"] == "bytes"
        assert int(full.headers["content-length"]) == len(data)

        tail = c.get(url, headers={"Range": "bytes=1000-"})
        assert tail.status_code == 206
        assert tail.content == data[1000:]
        assert tail.headers["content-range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"

        middle = c.get(url, headers={"Range": "bytes=10-19"})
        assert middle.status_code == 206 and middle.content == data[10:20]

        beyond = c.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416
        assert beyond.json()["error"]["code"] == "BAD_REQUEST"

        suffix = c.get(url, headers={"Range": "bytes=-100"})
        assert suffix.status_code == 206 and suffix.content == data[-100:]

        for bad in ("bytes=abc", "items=0-1", "bytes=-", "bytes=9-3"):
            resp = c.get(url, headers={"Range": bad})
            assert resp.status_code == 400, bad
            assert resp.json()["error"]["code"] == "BAD_REQUEST"

        head = c.head(url)
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len(data)


def test_directory_model_with_manifest(shared_registry):
    files = {"config.json": b'{"a": 1}', "weights/part-0.bin": os.urandom(5000)}
    entries = [FileEntry(p, _hex(b), len(b)) for p, b in files.items()]
    manifest = manifest_bytes(entries)
    name = f"d-{uuid.uuid4().hex[:10]}"
    body = {
        "version": "1",
        "artifact_digest": f"sha256:{_hex(manifest)}",
        "artifact_size": sum(len(b) for b in files.values()),
        "kind": "directory",
        "format": "onnx",
        "files": [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in entries],
        "policy_digest": "sha256:" + "ab" * 32,
        "git_sha": "1" * 40,
        "container_digest": "sha256:" + "cd" * 32,
        "dataset_snapshot": "ds",
        "card": {"tenant_id": "A", "domain": "credit", "purpose": {"allowed": ["x"]}},
    }
    with shared_registry.publisher() as c:
        for b in files.values():
            upload_blob(c, b)
        # Without the manifest blob the directory cannot be published.
        assert c.post(f"/v1/models/{name}/versions", json=body).status_code == 400
        upload_blob(c, manifest)
        lying = dict(body, files=body["files"][:1], artifact_size=len(files["config.json"]))
        assert c.post(f"/v1/models/{name}/versions", json=lying).status_code == 400
        resp = c.post(f"/v1/models/{name}/versions", json=body)
        assert resp.status_code == 201, resp.text
    with shared_registry.consumer() as c:
        rec = c.get(f"/v1/models/{name}/resolve/1").json()
        assert rec["kind"] == "directory"
        got = c.get(f"/v1/blobs/sha256/{rec['artifact_digest'][7:]}").content
        assert json.loads(got)["files"] == body["files"]
        for f in rec["files"]:
            assert c.get(f"/v1/blobs/sha256/{f['sha256']}").content == files[f["path"]]


def test_unreferenced_blob_is_for_its_uploaders_tenant(shared_registry):
    """An upload no version references yet: its tenant's publishers and admins see it;
    consumers do not, and no other tenant does, admins included (they govern their own
    tenant only)."""
    data = os.urandom(100)
    with shared_registry.publisher() as c:
        upload_blob(c, data)
    with shared_registry.consumer() as c:
        assert c.get(f"/v1/blobs/sha256/{_hex(data)}").status_code == 404
    for client in (shared_registry.admin(tenant="Z"), shared_registry.publisher(tenant="Z")):
        with client as c:
            assert c.get(f"/v1/blobs/sha256/{_hex(data)}").status_code == 404
    with shared_registry.admin() as c:
        assert c.get(f"/v1/blobs/sha256/{_hex(data)}").content == data


def test_json_body_too_large(shared_registry):
    with shared_registry.publisher() as c:
        resp = c.post(
            "/v1/models/x/versions",
            content=b"{" + b" " * (8 * 1024 * 1024 + 10) + b"}",
            headers={"content-type": "application/json"},
        )
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "BAD_REQUEST"

    def chunked():
        yield b'{"version": "'
        for _ in range(9):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    with shared_registry.publisher() as c:
        resp = c.post(
            "/v1/models/x/versions", content=chunked(), headers={"content-type": "application/json"}
        )
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "BAD_REQUEST"


def test_errors_are_json_for_unknown_routes_and_methods(shared_registry):
    with shared_registry.consumer() as c:
        slash = c.get("/v1/models/x/versions/")
        assert slash.status_code == 404 and slash.json()["error"]["code"] == "NOT_FOUND"
        missing = c.get("/v1/nothing-here")
        wrong_method = c.delete("/v1/models/x/versions/1")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert wrong_method.headers["allow"] == "GET"


@pytest.fixture
def small_registry(tmp_path):
    env = make_test_env(tmp_path / "env")
    cfg = env.registry_config.read_text()
    cfg = cfg.replace(
        'data_dir = "registry-data"\n', 'data_dir = "registry-data"\nmax_blob_bytes = 4096\n'
    )
    env.registry_config.write_text(cfg)
    try:
        with start_registry(env) as running:
            yield running
    finally:
        env.close()


def test_upload_larger_than_limit(small_registry):
    data = os.urandom(4097)
    with small_registry.publisher() as c:
        resp = c.post(f"/v1/blobs/sha256/{_hex(data)}", content=data)
        assert resp.status_code == 413
        assert resp.json()["error"]["code"] == "BAD_REQUEST"

        def chunked():
            for i in range(0, len(data), 1000):
                yield data[i : i + 1000]

        # A chunked body (no declared length) is refused too, never stored.
        resp = c.post(f"/v1/blobs/sha256/{_hex(data)}", content=chunked())
        assert resp.status_code in (411, 413)
        ok = os.urandom(4096)
        assert c.post(f"/v1/blobs/sha256/{_hex(ok)}", content=ok).status_code == 201
    assert not small_registry.blob_path(_hex(data)).exists()
    tmp = small_registry.data_dir / "blobs" / "tmp"
    assert list(tmp.iterdir()) == []


def _chunks(*parts: bytes):
    async def gen():
        for part in parts:
            yield part

    return gen()


@pytest.mark.parametrize(
    ("parts", "declared", "message"),
    [
        ((b"A" * 60, b"A" * 40), 50, "longer than its Content-Length"),
        ((b"A" * 30,), 50, "truncated"),
        ((b"B" * 50,), 50, "digest mismatch"),
    ],
)
def test_ingest_refuses_and_leaves_nothing(tmp_path, parts, declared, message):
    """The store itself: a body longer or shorter than declared, or hashing to another
    digest, is refused and neither the final name nor a temp file remains."""
    import anyio

    from trustload.registry.blobs import BlobStore
    from trustload.registry.errors import ApiError

    store = BlobStore(tmp_path)
    claimed = _hex(b"A" * 50)
    with pytest.raises(ApiError, match=message):
        anyio.run(store.ingest, claimed, _chunks(*parts), declared)
    assert not store.exists(claimed)
    assert list(store.tmp.iterdir()) == []
    assert list(store.root.iterdir()) == []
    stored = anyio.run(store.ingest, claimed, _chunks(b"A" * 20, b"A" * 30), 50)
    assert stored.created and store.path(claimed).read_bytes() == b"A" * 50
    assert store.path(claimed).stat().st_mode & 0o222 == 0


def test_stalled_upload_is_cut_off(tmp_path):
    import anyio

    from trustload.registry.blobs import BlobStore
    from trustload.registry.errors import ApiError

    async def stalled():
        yield b"A" * 10
        await anyio.sleep(5)
        yield b"A" * 40

    store = BlobStore(tmp_path)
    claimed = _hex(b"A" * 50)

    async def run():
        return await store.ingest(claimed, stalled(), 50, idle_timeout=0.2)

    with pytest.raises(ApiError, match="stalled") as info:
        anyio.run(run)
    assert info.value.status == 408
    assert list(store.tmp.iterdir()) == [] and not store.exists(claimed)


def test_stale_temp_files_are_swept_at_start(tmp_path):
    from trustload.registry.blobs import BlobStore

    store = BlobStore(tmp_path)
    stale = store.tmp / "upload-crashed.part"
    fresh = store.tmp / "upload-in-progress.part"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = stale.stat().st_mtime - 2 * 24 * 3600
    os.utime(stale, (old, old))
    BlobStore(tmp_path)
    assert not stale.exists() and fresh.exists()
