"""The OCI blob backend (``[server] blob_store = "oci://HOST/REPO"``) against a real
Debian docker-registry: uploads land in the OCI registry (not in data_dir), downloads
and byte ranges stream from it, a wrong digest leaves nothing behind, tampered storage
is the gate's DIGEST_MISMATCH, and an OCI registry that is down is a 503, never a 500."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.client.pki import CA
from tests.gate.conftest import World
from tests.support.ocireg import RunningOciRegistry, oci_registry
from tests.support.registry import (
    DevEnv,
    RunningRegistry,
    make_test_env,
    publish_bytes,
    start_registry,
    upload_blob,
)
from tests.support.replicas import use_oci_blob_store
from trustload.config import OciConfig
from trustload.errors import UsageError
from trustload.oci.registry import RegistryRepository
from trustload.oci.transport import OciTransport
from trustload.registry.app import open_blobs
from trustload.registry.blobs_oci import byte_range, parse_blob_store

pytestmark = pytest.mark.postgres_ok

REPO = "trustload/blobs"


@dataclass
class OciBacked:
    reg: RunningRegistry
    env: DevEnv
    oci: RunningOciRegistry
    work: Path

    def oci_blob(self, hexdigest: str) -> Path:
        """The blob's data file in docker-registry's filesystem storage."""
        return (
            self.oci.root
            / "storage/docker/registry/v2/blobs/sha256"
            / hexdigest[:2]
            / hexdigest
            / "data"
        )

    def oci_has(self, hexdigest: str) -> bool:
        """Asked over the distribution API, with trustload's own OCI client."""
        with OciTransport(OciConfig(registries=[self.oci.entry()])) as t:
            return RegistryRepository(t, self.oci.host, REPO).blob_exists(f"sha256:{hexdigest}")

    def data_dir_files(self) -> list[Path]:
        return [p for p in self.reg.data_dir.rglob("*") if p.is_file()]


@contextlib.contextmanager
def oci_backed(root: Path, auth: str = "none") -> Iterator[OciBacked]:
    """docker-registry, and a Registry keeping its blobs there."""
    with oci_registry(root / "oci", CA(root / "oci-pki", "oci-test-ca"), auth=auth) as oci:
        env = make_test_env(root / "env")
        try:
            use_oci_blob_store(env, oci, REPO)
            with start_registry(env) as reg:
                work = root / "work"
                work.mkdir()
                yield OciBacked(reg, env, oci, work)
        finally:
            env.close()


@pytest.fixture(scope="module")
def backed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciBacked]:
    with oci_backed(tmp_path_factory.mktemp("ociblobs")) as b:
        yield b


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_upload_lands_in_the_oci_registry_not_in_data_dir(backed: OciBacked) -> None:
    data = os.urandom(300_000)
    with backed.reg.publisher() as c:
        digest = upload_blob(c, data)
    hexdigest = digest.removeprefix("sha256:")
    assert backed.oci_has(hexdigest)
    assert backed.oci_blob(hexdigest).read_bytes() == data
    assert backed.data_dir_files() == []


def test_chunked_upload_and_streamed_download_of_a_large_blob(backed: OciBacked) -> None:
    data = os.urandom(20 * 1024 * 1024 + 12345)  # three PATCHes of 8 MiB at most
    name = f"big-{uuid.uuid4().hex[:8]}"
    with backed.reg.admin() as c:
        rec = publish_bytes(c, name, "1", data)
        assert rec.status_code == 201, rec.text
        head = c.head(f"/v1/blobs/sha256/{_hex(data)}")
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(data))
        h = hashlib.sha256()
        with c.stream("GET", f"/v1/blobs/sha256/{_hex(data)}") as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_bytes():
                h.update(chunk)
    assert h.hexdigest() == _hex(data)
    assert backed.data_dir_files() == []


@pytest.mark.parametrize(
    ("header", "part"),
    [
        ("bytes=10-19", slice(10, 20)),
        ("bytes=99990-", slice(99990, None)),
        ("bytes=-7", slice(-7, None)),
        ("bytes=99995-200000", slice(99995, None)),
    ],
)
def test_byte_ranges_are_forwarded(backed: OciBacked, header: str, part: slice) -> None:
    data = os.urandom(100_000)
    with backed.reg.publisher() as c:
        digest = upload_blob(c, data)
        resp = c.get(f"/v1/blobs/{digest.replace(':', '/')}", headers={"Range": header})
    assert resp.status_code == 206
    assert resp.content == data[part]
    start = part.start if part.start >= 0 else len(data) + part.start
    last = len(data) - 1 if part.stop is None else part.stop - 1
    assert resp.headers["content-range"] == f"bytes {start}-{last}/{len(data)}"


def test_several_ranges_and_unsatisfiable_ranges(backed: OciBacked) -> None:
    data = os.urandom(5000)
    with backed.reg.publisher() as c:
        digest = upload_blob(c, data)
        path = f"/v1/blobs/{digest.replace(':', '/')}"
        whole = c.get(path, headers={"Range": "bytes=0-1,5-9"})
        beyond = c.get(path, headers={"Range": "bytes=5000-"})
    assert whole.status_code == 200 and whole.content == data
    assert beyond.status_code == 416 and beyond.json()["error"]["code"] == "BAD_REQUEST"


def test_wrong_digest_leaves_nothing_in_the_oci_registry(backed: OciBacked) -> None:
    data = os.urandom(9 * 1024 * 1024)  # past one PATCH: the session must be cancelled
    wrong = _hex(b"something else " + os.urandom(8))
    with backed.reg.publisher() as c:
        resp = c.post(f"/v1/blobs/sha256/{wrong}", content=data)
        assert resp.status_code == 400, resp.text
        assert "digest mismatch" in resp.json()["error"]["message"]
        missing = c.get(f"/v1/blobs/sha256/{wrong}")
    assert missing.status_code == 404
    assert not backed.oci_has(wrong) and not backed.oci_has(_hex(data))


def test_tampered_blob_in_oci_storage_is_digest_mismatch_at_the_gate(backed: OciBacked) -> None:
    world = World(backed.reg, backed.env, backed.work, backed.work / f"g-{uuid.uuid4().hex[:6]}")
    name = f"t-{uuid.uuid4().hex[:8]}"
    model = world.model_file(data=os.urandom(2 * 1024 * 1024))
    rec = world.publish(name, "1", model)
    world.release_to_prod(name, "1")
    blob = backed.oci_blob(rec.artifact_digest.removeprefix("sha256:"))
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # same size: only the hash can tell
    blob.chmod(0o644)
    blob.write_bytes(bytes(raw))
    result = world.gate(f"{name}@production")
    assert not result.decision.permitted
    assert [str(c) for c in result.decision.reasons] == ["DIGEST_MISMATCH"]
    assert not any(world.gate_cfg.gate.cache_dir.rglob(rec.artifact_digest.removeprefix("sha256:")))


def test_oci_registry_down_is_503_and_records_nothing(tmp_path: Path) -> None:
    with oci_backed(tmp_path) as b:
        stored = os.urandom(4096)
        with b.reg.admin() as c:
            digest = upload_blob(c, stored)
        assert b.oci.proc is not None
        b.oci.proc.terminate()
        b.oci.proc.wait(10)
        fresh = os.urandom(4096)
        with b.reg.admin() as c:
            path = f"/v1/blobs/{digest.replace(':', '/')}"
            answers = [
                c.get(path),
                c.head(path),
                c.post(f"/v1/blobs/sha256/{_hex(fresh)}", content=fresh),
            ]
            log = c.get("/v1/governance-log").json()["events"]
        for resp in answers:
            assert resp.status_code == 503, resp.text
        for resp in (answers[0], answers[2]):
            assert resp.json()["error"]["code"] == "UNAVAILABLE"
            assert "REGISTRY_UNAVAILABLE" in resp.json()["error"]["message"]
        uploads = [e["detail"]["digest"] for e in log if e["action"] == "upload_blob"]
        assert uploads == [digest]  # the refused upload was never recorded
        assert "Traceback" not in b.reg.stderr()
        assert b.data_dir_files() == []


@pytest.mark.parametrize(
    "value",
    [
        "https://127.0.0.1:5000/r",
        "oci://127.0.0.1:5000",
        "oci:///r",
        "oci://h/r@sha256:ab",
        "oci://h/r:v1",
    ],
)
def test_blob_store_must_be_oci_host_and_repository(value: str) -> None:
    with pytest.raises(UsageError, match="oci://HOST/REPO"):
        parse_blob_store(value)


def test_blob_store_host_must_be_listed_in_oci_registries(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"not listed in \[\[oci.registries\]\]"):
        open_blobs(tmp_path, "oci://127.0.0.1:5999/blobs", OciConfig())


def test_registry_with_an_unlisted_blob_store_host_exits_2(dev_env: DevEnv) -> None:
    toml = dev_env.registry_config
    anchor = 'data_dir = "registry-data"\n'
    toml.write_text(toml.read_text().replace(anchor, anchor + 'blob_store = "oci://x.test/b"\n'))
    out = subprocess.run(
        [sys.executable, "-m", "trustload.cli.main", "registry", "serve", "--config", str(toml)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert "x.test" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-1,4-5", 10, None),
        ("bytes=2-4", 10, (2, 4)),
        ("bytes=2-", 10, (2, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=8-30", 10, (8, 9)),
    ],
)
def test_byte_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, size) == expected


def test_oci_registry_dying_mid_download_never_completes_the_body(tmp_path: Path) -> None:
    """Headers were sent when the OCI registry went away: the body ends short (the
    client sees a broken transfer, never a clean one), and the Registry lives on."""
    with oci_backed(tmp_path) as b:
        data = os.urandom(48 * 1024 * 1024)
        with b.reg.publisher() as c:
            digest = upload_blob(c, data)
        assert b.oci.proc is not None
        received = 0
        path = f"/v1/blobs/{digest.replace(':', '/')}"
        with (
            b.reg.publisher() as c,
            pytest.raises(httpx.HTTPError),  # noqa: PT012
            c.stream("GET", path) as resp,
        ):
            assert resp.status_code == 200
            for chunk in resp.iter_bytes():
                if received == 0:
                    b.oci.proc.kill()
                    b.oci.proc.wait(10)
                received += len(chunk)
        assert 0 < received < len(data)
        with b.reg.client(token="") as c:
            assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize("auth", ["basic", "token"])
def test_blob_store_with_credentials_from_oci_registries(tmp_path: Path, auth: str) -> None:
    """The OCI registry's credentials come from registry.toml's [[oci.registries]]
    (Basic, or the distribution token flow): chunked upload and download work."""
    with oci_backed(tmp_path, auth=auth) as b:
        assert b.oci.username is not None
        data = os.urandom(9 * 1024 * 1024)
        with b.reg.publisher() as c:
            digest = upload_blob(c, data)
            got = c.get(f"/v1/blobs/{digest.replace(':', '/')}")
        assert got.status_code == 200 and got.content == data
        assert b.oci_blob(digest.removeprefix("sha256:")).read_bytes() == data
