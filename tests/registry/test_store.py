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
