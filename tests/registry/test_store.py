"""Schema migrations and the database-level guards (append-only log, immutable
versions, final revocation). Runs on SQLite, and on PostgreSQL under with-postgres.sh."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.support.registry import DATABASE_ENV, _fresh_database
from trustload.errors import UsageError
from trustload.registry.auth import Caller
from trustload.registry.errors import ApiError
from trustload.registry.store import (
    MIGRATIONS,
    ModelRow,
    Store,
    VersionRow,
    make_engine,
    migrate,
    schema_version,
)

pytestmark = pytest.mark.postgres_ok

CALLER = Caller("admin", "A", None, (), "admin", "spiffe://trustload.local/ns/x/sa/y")


@pytest.fixture
def engine(tmp_path):
    base = os.environ.get(DATABASE_ENV)
    drop = None
    if base:
        url, drop = _fresh_database(base)
    else:
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    eng = make_engine(url)
    yield eng
    eng.dispose()
    if drop is not None:
        drop()


def test_migrations_run_on_empty_database_and_are_idempotent(engine):
    newest = max(m.number for m in MIGRATIONS)
    assert schema_version(engine) == 0
    assert migrate(engine) == [m.number for m in MIGRATIONS]
    assert schema_version(engine) == newest
    assert migrate(engine) == []
    assert migrate(engine) == []
    assert schema_version(engine) == newest
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT version FROM schema_version ORDER BY version")).all()
    assert [r[0] for r in rows] == [m.number for m in MIGRATIONS]


def test_newer_schema_is_refused(engine):
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO schema_version (version, description, applied_at) "
                "VALUES (999, 'x', 'y')"
            )
        )
    with pytest.raises(UsageError, match="newer"):
        migrate(engine)


def _version(engine) -> int:
    store = Store(engine)
    with store.tx() as s:
        m = ModelRow(name="m", tenant_id="A", created_at="2026-01-01T00:00:00Z")
        s.add(m)
        s.flush()
        v = VersionRow(
            model_id=m.id,
            version="1",
            stage="Staging",
            artifact_digest="sha256:" + "0" * 64,
            artifact_size=1,
            kind="file",
            format=None,
            policy_digest="sha256:" + "1" * 64,
            git_sha="g",
            container_digest="c",
            dataset_snapshot="d",
            signature_digest=None,
            attestation_digest=None,
            card_json="{}",
            files_json="[]",
            publisher="p",
            created_at="2026-01-01T00:00:00Z",
            revoked=False,
            quarantined=False,
        )
        s.add(v)
        s.flush()
        return v.id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE governance_log SET actor = 'someone else'",
        "DELETE FROM governance_log",
        "UPDATE versions SET artifact_digest = 'sha256:" + "f" * 64 + "'",
        'UPDATE versions SET card_json = \'{"tenant_id": "B"}\'',
        "DELETE FROM versions",
        "UPDATE versions SET revoked = FALSE",
    ],
)
def test_database_refuses_rewriting_history(engine, statement):
    migrate(engine)
    _version(engine)
    store = Store(engine)
    store.log_denied(CALLER, "stage", "m", "1")
    with engine.begin() as conn:
        conn.execute(text("UPDATE versions SET revoked = TRUE, revoked_reason = 'r'"))
        conn.execute(text("UPDATE versions SET stage = 'Archived'"))  # mutable: allowed
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM governance_log")).scalar() == 1
        row = conn.execute(text("SELECT revoked, artifact_digest FROM versions")).one()
    assert bool(row[0]) is True
    assert row[1] == "sha256:" + "0" * 64


# ---------------------------------------------------------------- upgrade from schema 2

_V2_ROWS = [
    "INSERT INTO models (id, name, tenant_id, created_at) VALUES "
    "(1, 'risk', 'A', 't0'), (2, 'fraud', 'B', 't0')",
    "INSERT INTO versions (id, model_id, version, stage, artifact_digest, artifact_size, kind, "
    "format, policy_digest, git_sha, container_digest, dataset_snapshot, signature_digest, "
    "attestation_digest, card_json, files_json, publisher, created_at, revoked, revoked_reason, "
    "quarantined, quarantine_reason) VALUES "
    "(1, 1, '1', 'Approved', 'sha256:{a}', 1, 'file', NULL, 'sha256:{p}', 'g', 'c', 'd', NULL, "
    "NULL, '{{}}', '[]', 'p', 't0', TRUE, 'leaked', FALSE, NULL), "
    "(2, 2, '1', 'Approved', 'sha256:{b}', 1, 'file', NULL, 'sha256:{p}', 'g', 'c', 'd', NULL, "
    "NULL, '{{}}', '[]', 'p', 't0', FALSE, NULL, FALSE, NULL)",
    "INSERT INTO aliases (id, model_id, alias, version_id, revision, change_ticket, updated_at, "
    "updated_by) VALUES (1, 2, 'production', 2, 1, NULL, 't0', 'x')",
    "INSERT INTO version_blobs (version_id, digest) VALUES (1, '{a}'), (2, '{b}')",
    "INSERT INTO governance_log (at, actor, action, model, version, detail_json) VALUES "
    "('t0', 'x', 'publish', 'risk', '1', '{{}}'), ('t0', 'x', 'publish', 'fraud', '1', '{{}}'), "
    "('t0', 'x', 'upload_blob', NULL, NULL, '{{}}')",
]
DIG_A, DIG_B, DIG_P = "a" * 64, "b" * 64, "1" * 64


def _caller(tenant: str, role: str = "admin") -> Caller:
    return Caller("s", tenant, None, (), role, "spiffe://trustload.local/ns/x/sa/y")


def test_upgrade_from_schema_2_keeps_data_and_scopes_it_by_tenant(engine):
    """A database at the previous head (2) with data in it, upgraded to 3: every row is
    kept, names become per tenant, ownership and revoked digests are backfilled from
    what each tenant could see before, and the guards still hold."""
    assert migrate(engine, upto=2) == [1, 2]
    with engine.begin() as conn:
        for statement in _V2_ROWS:
            conn.execute(text(statement.format(a=DIG_A, b=DIG_B, p=DIG_P)))
    assert migrate(engine) == [3, 4]
    assert schema_version(engine) == 4
    store = Store(engine)
    # Names are per tenant now: tenant A sees its risk, B its fraud; not each other's.
    assert store.resolve("risk", "1", _caller("A", "consumer"))["revoked_reason"] == "leaked"
    assert store.resolve("fraud", "production", _caller("B", "consumer"))["version"] == "1"
    for name, tenant in (("risk", "B"), ("fraud", "A")):
        with pytest.raises(ApiError) as err:
            store.resolve(name, "1", _caller(tenant))
        assert err.value.status == 404
    # Visibility kept exactly (what a tenant's versions referenced), no wider.
    assert store.blob_visible(DIG_A, _caller("A")) and store.blob_visible(DIG_B, _caller("B"))
    assert not store.blob_visible(DIG_A, _caller("B"))
    assert not store.blob_visible(DIG_B, _caller("A"))
    # The governance log is attributed through the (then global) model names.
    assert [
        e["model"] for e in store.governance_log(_caller("A"), model=None, after=0, limit=10)
    ] == ["risk"]
    assert [
        e["model"] for e in store.governance_log(_caller("B"), model=None, after=0, limit=10)
    ] == ["fraud"]
    with engine.connect() as conn:
        revoked = conn.execute(text("SELECT digest, reason FROM revoked_digests")).all()
        assert [tuple(r) for r in revoked] == [(f"sha256:{DIG_A}", "leaked")]
        assert conn.execute(text("SELECT count(*) FROM versions")).scalar() == 2
        # Versions published before migration 4 are served from the Registry's blobs.
        uris = conn.execute(text("SELECT artifact_uri FROM versions")).scalars().all()
        assert uris == [None, None]
    # Tenant B may now create its own "risk"; a second "risk" in tenant A is refused.
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO models (id, name, tenant_id, created_at) VALUES (10, 'risk', 'B', 't')"
            )
        )
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO models (id, name, tenant_id, created_at) VALUES (11, 'risk', 'A', 't')"
            )
        )
    # Append-only guards survived the migration, including on the new table.
    for statement in (
        "UPDATE governance_log SET actor = 'rewritten'",
        "DELETE FROM revoked_digests",
        "UPDATE revoked_digests SET reason = 'nothing to see'",
        # Migration 4: artifact_uri is version content, immutable like the digests.
        "UPDATE versions SET artifact_uri = 'oci://evil.example/x@sha256:" + "0" * 64 + "'",
    ):
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(statement))
    if engine.dialect.name == "sqlite":  # foreign keys are enforced again afterwards
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []


def test_fresh_schema_matches_the_upgraded_one(engine, tmp_path):
    """The ORM (store.py) and the migrations agree: every table and column the code maps
    exists after migrating, with the per-tenant name constraint."""
    from sqlalchemy import inspect as sa_inspect

    from trustload.registry.store import Base

    migrate(engine)
    insp = sa_inspect(engine)
    for table in Base.metadata.sorted_tables:
        assert insp.has_table(table.name), table.name
        have = {c["name"] for c in insp.get_columns(table.name)}
        assert {c.name for c in table.columns} == have, table.name
    uniques = [u["column_names"] for u in insp.get_unique_constraints("models")]
    assert sorted(uniques) == [["tenant_id", "name"]]
