"""Stateless replicas: two Registry processes on one PostgreSQL, blobs in a real OCI
registry (docker-registry), each with its own empty data_dir and no shared disk. A
write through one is read, downloaded and gated through the other; the governance log
they both append to stays one ordered log.

PostgreSQL: the suite's (scripts/with-postgres.sh) or a throwaway cluster started here;
skipped only when PostgreSQL's server binaries are absent (CI installs them)."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.client.pki import CA
from tests.gate.conftest import World
from tests.support.ocireg import RunningOciRegistry, oci_registry
from tests.support.registry import (
    RunningRegistry,
    _fresh_database,
    make_test_env,
    start_registry,
)
from tests.support.replicas import postgres_url, replica_env, shared_database, use_oci_blob_store
from trustload.registry.auth import Caller
from trustload.registry.store import Store, make_engine, migrate

REPO = "trustload/replicas"


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with postgres_url() as url:
        yield url


@dataclass
class Pair:
    one: World
    two: World
    oci: RunningOciRegistry


@pytest.fixture(scope="module")
def pair(pg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("replicas")
    with oci_registry(root / "oci", CA(root / "oci-pki", "oci-test-ca")) as oci:
        env = make_test_env(root / "env")
        with shared_database(env, pg):
            use_oci_blob_store(env, oci, REPO)
            env2 = replica_env(env, 2)
            with start_registry(env) as r1, start_registry(env2) as r2:
                assert r1.url != r2.url
                (root / "w1").mkdir()
                (root / "w2").mkdir()
                yield Pair(World(r1, env, root / "w1"), World(r2, env2, root / "w2"), oci)


def _files(reg: RunningRegistry) -> list[Path]:
    return [p for p in reg.data_dir.rglob("*") if p.is_file()]


def test_publish_through_one_is_read_and_downloaded_through_the_other(pair: Pair) -> None:
    name = f"r-{uuid.uuid4().hex[:8]}"
    data = bytes(range(256)) * 8192  # 2 MiB
    rec = pair.one.publish(name, "1", pair.one.model_file(data=data))
    with pair.two.reg.consumer() as c:
        got = c.get(f"/v1/models/{name}/versions/1")
        assert got.status_code == 200, got.text
        assert got.json()["artifact_digest"] == rec.artifact_digest
        h = hashlib.sha256()
        with c.stream("GET", f"/v1/blobs/{rec.artifact_digest.replace(':', '/')}") as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_bytes():
                h.update(chunk)
    assert "sha256:" + h.hexdigest() == rec.artifact_digest == "sha256:" + (
        hashlib.sha256(data).hexdigest()
    )
    assert _files(pair.one.reg) == [] and _files(pair.two.reg) == []


def test_alias_move_through_one_is_seen_by_a_gate_on_the_other(pair: Pair) -> None:
    name = f"a-{uuid.uuid4().hex[:8]}"
    pair.one.publish(name, "1")
    pair.one.publish(name, "2")
    pair.one.release_to_prod(name, "1")
    gate = World(pair.two.reg, pair.two.env, pair.two.work, pair.two.work / name)
    first = gate.gate(f"{name}@production")
    assert first.decision.permitted, first.decision.to_json()
    assert first.record is not None and first.record.version == "1"
    pair.one.release_to_prod(name, "2")  # through replica 1 only
    moved = gate.gate(f"{name}@production")
    assert moved.decision.permitted, moved.decision.to_json()
    assert moved.record is not None and moved.record.version == "2"
    with pair.one.reg.admin() as c:
        log = c.get("/v1/governance-log", params={"model": name}).json()["events"]
    actions = [e["action"] for e in log]
    assert actions.count("publish") == 2 and actions.count("alias") == 2
    ids = [e["id"] for e in log]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_writes_of_two_replicas_commit_in_log_order(pg: str) -> None:
    """Replica B's write waits for replica A's open one: ids commit in order, so a
    reader paging with ``after`` can never skip an event still being written."""
    url, drop = _fresh_database(pg)
    engines = [make_engine(url), make_engine(url)]
    try:
        migrate(engines[0])
        a, b = Store(engines[0]), Store(engines[1])
        who = Caller("spiffe://t/ns/x/sa/admin", "A", None, (), "admin", "admin-cert")
        b_done = threading.Event()
        with a.tx(write=True) as s:
            a._log(s, who, "denied", "m", None, {"attempted": "first"})
            s.flush()
            worker = threading.Thread(
                target=lambda: (b.log_denied(who, "second", "m", None), b_done.set())
            )
            worker.start()
            time.sleep(0.5)
            assert not b_done.is_set(), "replica B wrote while replica A's write was open"
            seen_meanwhile = b.governance_log(who, model="m", after=0, limit=10)
            assert seen_meanwhile == []
        worker.join(10)
        assert b_done.is_set()
        log = b.governance_log(who, model="m", after=0, limit=10)
        assert [e["detail"]["attempted"] for e in log] == ["first", "second"]
        assert log[0]["id"] < log[1]["id"] and log[0]["at"] <= log[1]["at"]
    finally:
        for e in engines:
            e.dispose()
        drop()
