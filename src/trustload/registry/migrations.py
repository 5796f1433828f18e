"""Numbered schema migrations of the Registry database, recorded in ``schema_version``.

Each migration's DDL is frozen here (SQLAlchemy Core, not the ORM classes of store.py),
so a database can be brought to any earlier head and upgraded from it: that is how the
upgrade path is tested. They run in order, in one transaction, under a lock
(PostgreSQL advisory lock; SQLite ``BEGIN IMMEDIATE``).

* 1: the initial tables.
* 2: database guards: append-only governance log and stage history, immutable version
  content, final revocation (defence in depth: even an operator with the app's SQL role
  cannot rewrite history silently).
* 3: tenancy by ownership. Model names are unique per tenant, not Registry-wide; every
  governance event records its tenant; ``blob_owners`` records which tenant uploaded a
  blob (visibility rests on it, never on a reference); ``revoked_digests`` makes a
  revocation bind the bytes (append-only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
    text,
)

from trustload.decision import rfc3339, utc_now
from trustload.errors import UsageError

WRITE_OPTION = "trustload_write"
_PG_LOCK_KEY = 0x7472757374  # "trust"

_meta = MetaData()
SCHEMA_VERSION = Table(
    "schema_version",
    _meta,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", String(40), nullable=False),
)


# ------------------------------------------------------------------ 1: initial schema


def _v1_tables() -> list[Table]:
    """The tables exactly as migration 1 created them (names were Registry-wide)."""
    m = MetaData()
    models = Table(
        "models",
        m,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(128), nullable=False, unique=True),
        Column("tenant_id", String(256), nullable=False, index=True),
        Column("created_at", String(40), nullable=False),
    )
    versions = Table(
        "versions",
        m,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("model_id", ForeignKey("models.id"), nullable=False, index=True),
        Column("version", String(128), nullable=False),
        Column("stage", String(16), nullable=False),
        Column("artifact_digest", String(71), nullable=False),
        Column("artifact_size", BigInteger, nullable=False),
        Column("kind", String(16), nullable=False),
        Column("format", String(64), nullable=True),
        Column("policy_digest", String(71), nullable=False),
        Column("git_sha", String(256), nullable=False),
        Column("container_digest", String(256), nullable=False),
        Column("dataset_snapshot", String(1024), nullable=False),
        Column("signature_digest", String(71), nullable=True),
        Column("attestation_digest", String(71), nullable=True),
        Column("card_json", Text, nullable=False),
        Column("files_json", Text, nullable=False),
        Column("publisher", String(1200), nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("revoked", Boolean, nullable=False),
        Column("revoked_reason", Text, nullable=True),
        Column("quarantined", Boolean, nullable=False),
        Column("quarantine_reason", Text, nullable=True),
        UniqueConstraint("model_id", "version", name="uq_versions_model_version"),
    )
    stage_history = Table(
        "stage_history",
        m,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("version_id", ForeignKey("versions.id"), nullable=False, index=True),
        Column("stage", String(16), nullable=False),
        Column("previous", String(16), nullable=True),
        Column("actor", String(1200), nullable=False),
        Column("at", String(40), nullable=False),
    )
    aliases = Table(
        "aliases",
        m,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("model_id", ForeignKey("models.id"), nullable=False, index=True),
        Column("alias", String(128), nullable=False),
        Column("version_id", ForeignKey("versions.id"), nullable=False),
        Column("revision", Integer, nullable=False),
        Column("change_ticket", String(256), nullable=True),
        Column("updated_at", String(40), nullable=False),
        Column("updated_by", String(1200), nullable=False),
        UniqueConstraint("model_id", "alias", name="uq_aliases_model_alias"),
    )
    version_blobs = Table(
        "version_blobs",
        m,
        Column("version_id", ForeignKey("versions.id"), primary_key=True),
        Column("digest", String(64), primary_key=True),
    )
    Index("ix_version_blobs_digest", version_blobs.c.digest)
    governance_log = Table(
        "governance_log",
        m,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("at", String(40), nullable=False),
        Column("actor", String(1200), nullable=False),
        Column("action", String(64), nullable=False),
        Column("model", String(128), nullable=True),
        Column("version", String(128), nullable=True),
        Column("detail_json", Text, nullable=False),
    )
    return [models, versions, stage_history, aliases, version_blobs, governance_log]


def _m1_initial(conn: Connection) -> None:
    tables = _v1_tables()
    tables[0].metadata.create_all(conn, tables=tables, checkfirst=True)


# ------------------------------------------------------------------ 2: guards

_IMMUTABLE_COLUMNS = (
    "model_id, version, artifact_digest, artifact_size, kind, format, policy_digest, "
    "git_sha, container_digest, dataset_snapshot, signature_digest, attestation_digest, "
    "card_json, files_json, publisher, created_at"
)
_PG_REFUSE = (
    "CREATE OR REPLACE FUNCTION trustload_refuse_change() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
    "'trustload: % on % refused (append-only / immutable)', TG_OP, TG_TABLE_NAME; "
    "END $$"
)


def _pg_triggers(conn: Connection, guards: dict[str, str]) -> None:
    conn.execute(text(_PG_REFUSE))
    for name, when in guards.items():
        table = when.split(" ON ")[1].split()[0]
        conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
        each = "" if "FOR EACH ROW" in when else " FOR EACH ROW"
        conn.execute(
            text(f"CREATE TRIGGER {name} {when}{each} EXECUTE FUNCTION trustload_refuse_change()")
        )


def _sqlite_triggers(conn: Connection, guards: dict[str, str]) -> None:
    for name, when in guards.items():
        conn.execute(
            text(
                f"CREATE TRIGGER IF NOT EXISTS {name} {when} BEGIN "
                f"SELECT RAISE(ABORT, 'trustload: refused (append-only / immutable)'); END"
            )
        )


def _dialect(conn: Connection) -> str:
    name = conn.dialect.name
    if name not in ("postgresql", "sqlite"):
        raise UsageError(f"unsupported database dialect {name}")
    return name


def _m2_guards(conn: Connection) -> None:
    """Append-only log and history, immutable version content, final revocation."""
    if _dialect(conn) == "postgresql":
        _pg_triggers(
            conn,
            {
                "governance_log_append_only": "BEFORE UPDATE OR DELETE ON governance_log",
                "stage_history_append_only": "BEFORE UPDATE OR DELETE ON stage_history",
                "versions_no_delete": "BEFORE DELETE ON versions",
                "versions_immutable": f"BEFORE UPDATE OF {_IMMUTABLE_COLUMNS} ON versions",
                "versions_revocation_final": (
                    "BEFORE UPDATE OF revoked ON versions FOR EACH ROW "
                    "WHEN (OLD.revoked AND NOT NEW.revoked)"
                ),
            },
        )
        return
    _sqlite_triggers(
        conn,
        {
            "governance_log_no_update": "BEFORE UPDATE ON governance_log",
            "governance_log_no_delete": "BEFORE DELETE ON governance_log",
            "stage_history_no_update": "BEFORE UPDATE ON stage_history",
            "stage_history_no_delete": "BEFORE DELETE ON stage_history",
            "versions_no_delete": "BEFORE DELETE ON versions",
            "versions_immutable": f"BEFORE UPDATE OF {_IMMUTABLE_COLUMNS} ON versions",
            "versions_revocation_final": (
                "BEFORE UPDATE OF revoked ON versions WHEN OLD.revoked = 1 AND NEW.revoked = 0"
            ),
        },
    )


# ------------------------------------------------------------------ 3: tenancy by ownership


def _v3_new_tables() -> tuple[Table, Table, Table]:
    m = MetaData()
    models = Table(
        "models_v3",
        m,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(128), nullable=False),
        Column("tenant_id", String(256), nullable=False),
        Column("created_at", String(40), nullable=False),
        UniqueConstraint("tenant_id", "name", name="uq_models_tenant_name"),
    )
    owners = Table(
        "blob_owners",
        m,
        Column("tenant_id", String(256), primary_key=True),
        Column("digest", String(64), primary_key=True),
        Column("created_at", String(40), nullable=False),
    )
    revoked = Table(
        "revoked_digests",
        m,
        Column("digest", String(71), primary_key=True),
        Column("tenant_id", String(256), nullable=False),
        Column("model", String(128), nullable=False),
        Column("version", String(128), nullable=False),
        Column("reason", Text, nullable=False),
        Column("actor", String(1200), nullable=False),
        Column("revoked_at", String(40), nullable=False),
    )
    return models, owners, revoked


def _names_per_tenant(conn: Connection) -> None:
    """``models.name`` unique per tenant. PostgreSQL alters the constraint in place;
    SQLite cannot drop a table constraint, so the table is rebuilt (foreign keys are
    off during migrations there, see ``migrate``; ids are kept, so every reference
    stays valid and ``PRAGMA foreign_key_check`` proves it)."""
    if _dialect(conn) == "postgresql":
        for uc in inspect(conn).get_unique_constraints("models"):
            if uc["column_names"] == ["name"] and uc["name"]:
                conn.execute(text(f'ALTER TABLE models DROP CONSTRAINT "{uc["name"]}"'))
        conn.execute(
            text("ALTER TABLE models ADD CONSTRAINT uq_models_tenant_name UNIQUE (tenant_id, name)")
        )
        return
    models_v3 = _v3_new_tables()[0]
    models_v3.create(conn)
    conn.execute(
        text(
            "INSERT INTO models_v3 (id, name, tenant_id, created_at) "
            "SELECT id, name, tenant_id, created_at FROM models"
        )
    )
    conn.execute(text("DROP TABLE models"))
    conn.execute(text("ALTER TABLE models_v3 RENAME TO models"))
    conn.execute(text("CREATE INDEX ix_models_tenant_id ON models (tenant_id)"))
    broken = conn.execute(text("PRAGMA foreign_key_check")).all()
    if broken:
        raise UsageError(f"migration 3 would break {len(broken)} foreign key(s); refused")


def _log_tenants(conn: Connection) -> None:
    """Every governance event names its tenant. Old events are attributed through their
    model (names were Registry-wide until now, so that is unambiguous); events without
    a model (blob uploads, refusals) stay unattributed (NULL) and are listed to no
    tenant. The append-only guard is lifted for this one statement only, inside the
    migration's transaction, and re-installed before it commits."""
    conn.execute(text("ALTER TABLE governance_log ADD COLUMN tenant_id VARCHAR(256)"))
    if _dialect(conn) == "postgresql":
        conn.execute(text("DROP TRIGGER IF EXISTS governance_log_append_only ON governance_log"))
    else:
        conn.execute(text("DROP TRIGGER IF EXISTS governance_log_no_update"))
    conn.execute(
        text(
            "UPDATE governance_log SET tenant_id = "
            "(SELECT models.tenant_id FROM models WHERE models.name = governance_log.model) "
            "WHERE model IS NOT NULL"
        )
    )
    _m2_guards(conn)
    conn.execute(text("CREATE INDEX ix_governance_log_tenant_id ON governance_log (tenant_id)"))


def _m3_tenancy(conn: Connection) -> None:
    now = rfc3339(utc_now())
    _log_tenants(conn)  # before the rebuild: it reads models by name
    _names_per_tenant(conn)
    _, owners, revoked = _v3_new_tables()
    owners.create(conn)
    revoked.create(conn)
    # Visibility before this migration was "referenced by a version of the tenant";
    # keep exactly that (no wider), as ownership.
    conn.execute(
        text(
            "INSERT INTO blob_owners (tenant_id, digest, created_at) "
            "SELECT DISTINCT m.tenant_id, vb.digest, :now FROM version_blobs vb "
            "JOIN versions v ON v.id = vb.version_id JOIN models m ON m.id = v.model_id"
        ),
        {"now": now},
    )
    # Every digest revoked so far, with the reason of its first revocation.
    conn.execute(
        text(
            "INSERT INTO revoked_digests "
            "(digest, tenant_id, model, version, reason, actor, revoked_at) "
            "SELECT v.artifact_digest, m.tenant_id, m.name, v.version, "
            "COALESCE(v.revoked_reason, 'revoked'), 'migration 3', :now "
            "FROM versions v JOIN models m ON m.id = v.model_id "
            "WHERE v.id IN (SELECT MIN(id) FROM versions WHERE revoked GROUP BY artifact_digest)"
        ),
        {"now": now},
    )
    if _dialect(conn) == "postgresql":
        _pg_triggers(
            conn, {"revoked_digests_append_only": "BEFORE UPDATE OR DELETE ON revoked_digests"}
        )
    else:
        _sqlite_triggers(
            conn,
            {
                "revoked_digests_no_update": "BEFORE UPDATE ON revoked_digests",
                "revoked_digests_no_delete": "BEFORE DELETE ON revoked_digests",
            },
        )


# ------------------------------------------------------------------ 4: OCI artifacts


def _m4_artifact_uri(conn: Connection) -> None:
    """``versions.artifact_uri`` (``oci://HOST/REPO@sha256:<manifest>``), NULL for every
    version published so far (their bytes are in this Registry's blob store). Like all
    version content it is immutable once written."""
    conn.execute(text("ALTER TABLE versions ADD COLUMN artifact_uri VARCHAR(600)"))
    guard = {"versions_artifact_uri_immutable": "BEFORE UPDATE OF artifact_uri ON versions"}
    if _dialect(conn) == "postgresql":
        _pg_triggers(conn, guard)
    else:
        _sqlite_triggers(conn, guard)


# ------------------------------------------------------------------ running them


@dataclass(frozen=True)
class Migration:
    number: int
    description: str
    apply: Callable[[Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _m1_initial),
    Migration(2, "append-only log, immutable versions, final revocation", _m2_guards),
    Migration(
        3,
        "tenant-owned model names, blob ownership, revoked digests, tenant of log events",
        _m3_tenancy,
    ),
    Migration(4, "artifact_uri: versions whose bytes live in an OCI registry", _m4_artifact_uri),
)


def _apply(conn: Connection, upto: int) -> list[int]:
    applied_now: list[int] = []
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    SCHEMA_VERSION.create(conn, checkfirst=True)
    done = set(conn.scalars(select(SCHEMA_VERSION.c.version)))
    newest = max(m.number for m in MIGRATIONS)
    if done and max(done) > newest:
        raise UsageError(
            f"database schema version {max(done)} is newer than this trustload ({newest})"
        )
    for m in MIGRATIONS:
        if m.number in done or m.number > upto:
            continue
        m.apply(conn)
        conn.execute(
            SCHEMA_VERSION.insert().values(
                version=m.number, description=m.description, applied_at=rfc3339(utc_now())
            )
        )
        applied_now.append(m.number)
    return applied_now


def migrate(engine: Engine, *, upto: int | None = None) -> list[int]:
    """Bring the schema to the newest version (or to ``upto``, for upgrade tests);
    return the migrations applied now.

    SQLite: foreign keys are switched off on this connection for the migration (a
    table rebuild needs it; ``PRAGMA foreign_keys`` is a no-op inside a transaction,
    so it is set on the raw connection before BEGIN) and back on afterwards."""
    target = max(m.number for m in MIGRATIONS) if upto is None else upto
    with engine.execution_options(**{WRITE_OPTION: True}).connect() as conn:
        raw: Any = None
        if conn.dialect.name == "sqlite":
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                return _apply(conn, target)
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def schema_version(engine: Engine) -> int:
    """The newest migration applied (0 on an empty database)."""
    if not inspect(engine).has_table(SCHEMA_VERSION.name):
        return 0
    with engine.connect() as conn:
        return max(conn.scalars(select(SCHEMA_VERSION.c.version)), default=0)
