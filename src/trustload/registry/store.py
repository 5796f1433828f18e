"""The Registry's records (SQLAlchemy 2): models, immutable versions, stage history,
aliases, revocation / quarantine and the append-only governance log.

Design notes:

* A version's content fields (digests, size, kind, card, provenance, publisher) are
  written once. Database triggers refuse any later change to them, refuse un-revoking
  and refuse any UPDATE/DELETE of the governance log and stage history, so even a
  bug in this code (or an operator with SQL access through the app's role) cannot
  rewrite history silently (defence in depth; the code never tries).
* Tenancy: a model belongs to the tenant of its first version's card; every later
  version must name the same tenant. A caller of another tenant gets ``NOT_FOUND``:
  the Registry does not confirm that another tenant's model exists (404, not 403).
* Schema changes are numbered migrations recorded in ``schema_version``; each is
  idempotent and they run in order under a lock (PostgreSQL advisory lock).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from trustload.decision import rfc3339, utc_now
from trustload.digests import FileEntry, check_relative_path, manifest_bytes
from trustload.errors import FormatError, UsageError
from trustload.facts import STAGES
from trustload.registry.auth import Caller
from trustload.registry.errors import bad_request, conflict, not_found

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_REASON = 2000
MAX_LOG_PAGE = 1000
MAX_VERSIONS_LISTED = 10_000
WRITE_OPTION = "trustload_write"


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    description: Mapped[str] = mapped_column(String(200))
    applied_at: Mapped[str] = mapped_column(String(40))


class ModelRow(Base):
    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(256), index=True)
    created_at: Mapped[str] = mapped_column(String(40))


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_versions_model_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    version: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(16))
    artifact_digest: Mapped[str] = mapped_column(String(71))
    artifact_size: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str | None] = mapped_column(String(64), nullable=True)
    policy_digest: Mapped[str] = mapped_column(String(71))
    git_sha: Mapped[str] = mapped_column(String(256))
    container_digest: Mapped[str] = mapped_column(String(256))
    dataset_snapshot: Mapped[str] = mapped_column(String(1024))
    signature_digest: Mapped[str | None] = mapped_column(String(71), nullable=True)
    attestation_digest: Mapped[str | None] = mapped_column(String(71), nullable=True)
    card_json: Mapped[str] = mapped_column(Text)
    files_json: Mapped[str] = mapped_column(Text)
    publisher: Mapped[str] = mapped_column(String(1200))
    created_at: Mapped[str] = mapped_column(String(40))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)
    quarantine_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class StageChangeRow(Base):
    __tablename__ = "stage_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    previous: Mapped[str | None] = mapped_column(String(16), nullable=True)
    actor: Mapped[str] = mapped_column(String(1200))
    at: Mapped[str] = mapped_column(String(40))


class AliasRow(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias", name="uq_aliases_model_alias"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    alias: Mapped[str] = mapped_column(String(128))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    revision: Mapped[int] = mapped_column(Integer)
    change_ticket: Mapped[str | None] = mapped_column(String(256), nullable=True)
    updated_at: Mapped[str] = mapped_column(String(40))
    updated_by: Mapped[str] = mapped_column(String(1200))


class VersionBlobRow(Base):
    """Which blobs a version references: the basis of tenancy on blob downloads."""

    __tablename__ = "version_blobs"
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)


Index("ix_version_blobs_digest", VersionBlobRow.digest)


class GovernanceEventRow(Base):
    __tablename__ = "governance_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(1200))
    action: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail_json: Mapped[str] = mapped_column(Text)


_VERSION_COLUMNS = tuple(cast(Table, VersionRow.__table__).c)

# Hot-path statements, built once: building a select costs more than running it.
_MODEL_BY_NAME = select(ModelRow.id, ModelRow.tenant_id).where(ModelRow.name == bindparam("name"))
_RESOLVE_VERSION = (
    select(ModelRow.tenant_id.label("model_tenant"), *_VERSION_COLUMNS)
    .join(VersionRow, VersionRow.model_id == ModelRow.id)
    .where(ModelRow.name == bindparam("name"), VersionRow.version == bindparam("ref"))
)
_RESOLVE_ALIAS = (
    select(
        ModelRow.tenant_id.label("model_tenant"),
        AliasRow.alias.label("alias_name"),
        AliasRow.revision.label("alias_revision"),
        AliasRow.change_ticket.label("alias_ticket"),
        *_VERSION_COLUMNS,
    )
    .join(AliasRow, AliasRow.model_id == ModelRow.id)
    .join(VersionRow, VersionRow.id == AliasRow.version_id)
    .where(ModelRow.name == bindparam("name"), AliasRow.alias == bindparam("ref"))
)
_VERSION_OF_MODEL = select(*_VERSION_COLUMNS).where(
    VersionRow.model_id == bindparam("model_id"), VersionRow.version == bindparam("version")
)
_VERSIONS_OF_MODEL = (
    select(*_VERSION_COLUMNS)
    .where(VersionRow.model_id == bindparam("model_id"))
    .order_by(VersionRow.id)
    .limit(MAX_VERSIONS_LISTED)
)
_BLOB_OF_TENANT = (
    select(VersionBlobRow.version_id)
    .join(VersionRow, VersionRow.id == VersionBlobRow.version_id)
    .join(ModelRow, ModelRow.id == VersionRow.model_id)
    .where(VersionBlobRow.digest == bindparam("digest"), ModelRow.tenant_id == bindparam("tenant"))
    .limit(1)
)


# --------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class Migration:
    number: int
    description: str
    apply: Callable[[Connection], None]


def _m1_initial(conn: Connection) -> None:
    rows = (ModelRow, VersionRow, StageChangeRow, AliasRow, VersionBlobRow, GovernanceEventRow)
    tables = [cast(Table, row.__table__) for row in rows]
    Base.metadata.create_all(conn, tables=tables, checkfirst=True)


_IMMUTABLE_COLUMNS = (
    "model_id, version, artifact_digest, artifact_size, kind, format, policy_digest, "
    "git_sha, container_digest, dataset_snapshot, signature_digest, attestation_digest, "
    "card_json, files_json, publisher, created_at"
)


def _m2_guards(conn: Connection) -> None:
    """Append-only log and history, immutable version content, final revocation."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION trustload_refuse_change() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
                "'trustload: % on % refused (append-only / immutable)', TG_OP, TG_TABLE_NAME; "
                "END $$"
            )
        )
        guards = {
            "governance_log_append_only": "BEFORE UPDATE OR DELETE ON governance_log",
            "stage_history_append_only": "BEFORE UPDATE OR DELETE ON stage_history",
            "versions_no_delete": "BEFORE DELETE ON versions",
            "versions_immutable": f"BEFORE UPDATE OF {_IMMUTABLE_COLUMNS} ON versions",
            "versions_revocation_final": (
                "BEFORE UPDATE OF revoked ON versions FOR EACH ROW "
                "WHEN (OLD.revoked AND NOT NEW.revoked)"
            ),
        }
        for name, when in guards.items():
            table = when.split(" ON ")[1].split()[0]
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
            each = "" if "FOR EACH ROW" in when else " FOR EACH ROW"
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} {when}{each} EXECUTE FUNCTION trustload_refuse_change()"
                )
            )
        return
    if conn.dialect.name == "sqlite":
        guards_sqlite = {
            "governance_log_no_update": "BEFORE UPDATE ON governance_log",
            "governance_log_no_delete": "BEFORE DELETE ON governance_log",
            "stage_history_no_update": "BEFORE UPDATE ON stage_history",
            "stage_history_no_delete": "BEFORE DELETE ON stage_history",
            "versions_no_delete": "BEFORE DELETE ON versions",
            "versions_immutable": f"BEFORE UPDATE OF {_IMMUTABLE_COLUMNS} ON versions",
            "versions_revocation_final": (
                "BEFORE UPDATE OF revoked ON versions WHEN OLD.revoked = 1 AND NEW.revoked = 0"
            ),
        }
        for name, when in guards_sqlite.items():
            conn.execute(
                text(
                    f"CREATE TRIGGER IF NOT EXISTS {name} {when} BEGIN "
                    f"SELECT RAISE(ABORT, 'trustload: refused (append-only / immutable)'); END"
                )
            )
        return
    raise UsageError(f"unsupported database dialect {conn.dialect.name}")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _m1_initial),
    Migration(2, "append-only log, immutable versions, final revocation", _m2_guards),
)
_PG_LOCK_KEY = 0x7472757374  # "trust"


def migrate(engine: Engine) -> list[int]:
    """Bring the schema to the newest version; return the migrations applied now."""
    applied_now: list[int] = []
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        cast(Table, SchemaVersion.__table__).create(conn, checkfirst=True)
        done = set(conn.scalars(select(SchemaVersion.version)))
        newest = max(m.number for m in MIGRATIONS)
        if done and max(done) > newest:
            raise UsageError(
                f"database schema version {max(done)} is newer than this trustload ({newest})"
            )
        for m in MIGRATIONS:
            if m.number in done:
                continue
            m.apply(conn)
            conn.execute(
                insert(SchemaVersion).values(
                    version=m.number, description=m.description, applied_at=rfc3339(utc_now())
                )
            )
            applied_now.append(m.number)
    return applied_now


def schema_version(engine: Engine) -> int:
    """The newest migration applied (0 on an empty database)."""
    if not inspect(engine).has_table(SchemaVersion.__tablename__):
        return 0
    with engine.connect() as conn:
        return max(conn.scalars(select(SchemaVersion.version)), default=0)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # We emit BEGIN ourselves (below): pysqlite's implicit one is deferred and
            # skips DDL, so migrations would not be transactional.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            write = conn.get_execution_options().get(WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    if url.startswith("postgresql"):
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    raise UsageError("database must be a sqlite:/// or postgresql+psycopg:// URL")


# --------------------------------------------------------------------------- records


def _loads(value: str) -> Any:
    return json.loads(value)


@dataclass(frozen=True)
class AliasView:
    alias: str
    revision: int
    change_ticket: str | None


def version_record(name: str, v: Any, alias: AliasView | None, served_at: str) -> dict[str, Any]:
    """The version record of docs/registry-api.md. ``v`` is a VersionRow or a Core row
    with the same column names."""
    return {
        "name": name,
        "version": v.version,
        "stage": v.stage,
        "artifact_digest": v.artifact_digest,
        "artifact_size": v.artifact_size,
        "kind": v.kind,
        "format": v.format,
        "policy_digest": v.policy_digest,
        "git_sha": v.git_sha,
        "container_digest": v.container_digest,
        "dataset_snapshot": v.dataset_snapshot,
        "revoked": bool(v.revoked),
        "revoked_reason": v.revoked_reason,
        "quarantined": bool(v.quarantined),
        "quarantine_reason": v.quarantine_reason,
        "card": _loads(v.card_json),
        "signature_digest": v.signature_digest,
        "attestation_digest": v.attestation_digest,
        "files": _loads(v.files_json),
        "alias": alias.alias if alias else None,
        "alias_revision": alias.revision if alias else None,
        "change_ticket": alias.change_ticket if alias else None,
        "publisher": v.publisher,
        "created_at": v.created_at,
        "served_at": served_at,
    }


@dataclass(frozen=True)
class PublishRequest:
    """A validated publish request (app.py parses JSON into the pydantic model)."""

    version: str
    artifact_digest: str
    artifact_size: int
    kind: str
    format: str | None
    files: tuple[FileEntry, ...]
    policy_digest: str
    git_sha: str
    container_digest: str
    dataset_snapshot: str
    signature_digest: str | None
    attestation_digest: str | None
    card: dict[str, Any]


def check_name(value: str, what: str) -> str:
    if not NAME_RE.match(value):
        raise bad_request(f"{what} must match {NAME_RE.pattern}")
    return value


def check_digest(value: str, what: str) -> str:
    if not DIGEST_RE.match(value):
        raise bad_request(f"{what} must be sha256:<64 lowercase hex>")
    return value


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise bad_request(f"a reason of 1..{MAX_REASON} characters is required")
    return reason


BlobSize = Callable[[str], "int | None"]
BlobRead = Callable[[str, int], bytes]


class Store:
    """Every Registry operation, each in one transaction, each logged."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.write_engine = engine.execution_options(**{WRITE_OPTION: True})

    @contextmanager
    def tx(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction. ``write`` ones take SQLite's write lock up front (BEGIN
        IMMEDIATE) so a read-then-write never fails on a stale snapshot under load."""
        bind = self.write_engine if write else self.engine
        with Session(bind, expire_on_commit=False) as s, s.begin():
            yield s

    # -- helpers -----------------------------------------------------------------

    @staticmethod
    def _log(
        s: Session,
        caller: Caller,
        action: str,
        model: str | None,
        version: str | None,
        detail: dict[str, Any],
    ) -> None:
        s.add(
            GovernanceEventRow(
                at=rfc3339(utc_now()),
                actor=caller.actor,
                action=action,
                model=model,
                version=version,
                detail_json=json.dumps(detail, sort_keys=True, separators=(",", ":")),
            )
        )

    @staticmethod
    def _model(s: Session, name: str, caller: Caller) -> ModelRow:
        check_name(name, "model name")
        m = s.scalars(select(ModelRow).where(ModelRow.name == name)).first()
        if m is None or not caller.sees_tenant(m.tenant_id):
            # Another tenant's model is indistinguishable from a missing one.
            raise not_found(f"no model {name!r}")
        return m

    @staticmethod
    def _version(s: Session, m: ModelRow, version: str, *, lock: bool = False) -> VersionRow:
        check_name(version, "version")
        q = select(VersionRow).where(VersionRow.model_id == m.id, VersionRow.version == version)
        if lock:  # PostgreSQL: row lock, so concurrent governance actions serialise
            q = q.with_for_update()
        v = s.scalars(q).first()
        if v is None:
            raise not_found(f"no version {m.name}@{version}")
        return v

    def log_denied(
        self, caller: Caller, action: str, model: str | None, version: str | None
    ) -> None:
        """Refused governance attempts are governance events too (who tried what)."""
        with self.tx(write=True) as s:
            self._log(s, caller, "denied", model, version, {"attempted": action})

    # -- reads -------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection for the hot paths: SQLAlchemy Core, no ORM session
        (an order of magnitude cheaper per request)."""
        with self.engine.connect() as conn:
            yield conn

    def _visible_model_id(self, conn: Connection, name: str, caller: Caller) -> int:
        row = conn.execute(_MODEL_BY_NAME, {"name": name}).first()
        if row is None or not caller.sees_tenant(row.tenant_id):
            raise not_found(f"no model {name!r}")
        return int(row.id)

    def resolve(self, name: str, ref: str, caller: Caller) -> dict[str, Any]:
        """A version wins over an alias of the same name (publish and alias refuse
        such clashes anyway). Two indexed queries on the hot path, tenancy after."""
        check_name(name, "model name")
        check_name(ref, "ref")
        with self.read() as conn:
            row = conn.execute(_RESOLVE_VERSION, {"name": name, "ref": ref}).first()
            if row is not None:
                if caller.sees_tenant(row.model_tenant):
                    return version_record(name, row, None, rfc3339(utc_now()))
                raise not_found(f"no model {name!r}")
            row = conn.execute(_RESOLVE_ALIAS, {"name": name, "ref": ref}).first()
            if row is not None:
                if caller.sees_tenant(row.model_tenant):
                    view = AliasView(row.alias_name, row.alias_revision, row.alias_ticket)
                    return version_record(name, row, view, rfc3339(utc_now()))
                raise not_found(f"no model {name!r}")
            self._visible_model_id(conn, name, caller)  # the precise 404
            raise not_found(f"no version or alias {name}@{ref}")

    def get_version(self, name: str, version: str, caller: Caller) -> dict[str, Any]:
        check_name(name, "model name")
        check_name(version, "version")
        with self.read() as conn:
            model_id = self._visible_model_id(conn, name, caller)
            row = conn.execute(
                _VERSION_OF_MODEL, {"model_id": model_id, "version": version}
            ).first()
            if row is None:
                raise not_found(f"no version {name}@{version}")
            return version_record(name, row, None, rfc3339(utc_now()))

    def list_versions(self, name: str, caller: Caller) -> list[dict[str, Any]]:
        check_name(name, "model name")
        with self.read() as conn:
            model_id = self._visible_model_id(conn, name, caller)
            now = rfc3339(utc_now())
            rows = conn.execute(_VERSIONS_OF_MODEL, {"model_id": model_id})
            return [version_record(name, row, None, now) for row in rows]

    def stage_history(self, name: str, version: str, caller: Caller) -> list[dict[str, Any]]:
        with self.tx() as s:
            m = self._model(s, name, caller)
            v = self._version(s, m, version)
            rows = s.scalars(
                select(StageChangeRow)
                .where(StageChangeRow.version_id == v.id)
                .order_by(StageChangeRow.id)
            )
            return [
                {"stage": r.stage, "previous": r.previous, "actor": r.actor, "at": r.at}
                for r in rows
            ]

    def blob_visible(self, hexdigest: str, caller: Caller) -> bool:
        """Tenancy on blobs: visible if some version of the caller's tenant uses it
        (admins see every blob, referenced or not)."""
        if caller.is_admin:
            return True
        with self.read() as conn:
            params = {"digest": hexdigest, "tenant": caller.tenant_id}
            return conn.execute(_BLOB_OF_TENANT, params).first() is not None

    def governance_log(
        self, caller: Caller, *, model: str | None, after: int, limit: int
    ) -> list[dict[str, Any]]:
        limit = max(1, min(limit, MAX_LOG_PAGE))
        with self.tx() as s:
            q = select(GovernanceEventRow).where(GovernanceEventRow.id > after)
            if model is not None:
                q = q.where(GovernanceEventRow.model == model)
            rows = s.scalars(q.order_by(GovernanceEventRow.id).limit(limit))
            return [
                {
                    "id": r.id,
                    "at": r.at,
                    "actor": r.actor,
                    "action": r.action,
                    "model": r.model,
                    "version": r.version,
                    "detail": _loads(r.detail_json),
                }
                for r in rows
            ]

    # -- writes ------------------------------------------------------------------

    def log_blob_upload(self, caller: Caller, hexdigest: str, size: int, created: bool) -> None:
        with self.tx(write=True) as s:
            self._log(
                s,
                caller,
                "upload_blob",
                None,
                None,
                {"digest": f"sha256:{hexdigest}", "size": size, "created": created},
            )

    def publish(
        self,
        name: str,
        req: PublishRequest,
        caller: Caller,
        blob_size: BlobSize,
        blob_read: BlobRead,
    ) -> dict[str, Any]:
        check_name(name, "model name")
        check_name(req.version, "version")
        tenant = req.card.get("tenant_id")
        if not isinstance(tenant, str) or not tenant:
            raise bad_request("card.tenant_id (a non-empty string) is required")
        if tenant != caller.tenant_id and not caller.is_admin:
            raise bad_request("card.tenant_id must be the publisher's own tenant")
        referenced = self._check_artifact(req, blob_size, blob_read)
        now = rfc3339(utc_now())
        try:
            with self.tx(write=True) as s:
                m = s.scalars(select(ModelRow).where(ModelRow.name == name)).first()
                if m is None:
                    m = ModelRow(name=name, tenant_id=tenant, created_at=now)
                    s.add(m)
                    s.flush()
                elif not caller.sees_tenant(m.tenant_id):
                    raise not_found(f"no model {name!r}")
                elif m.tenant_id != tenant:
                    raise conflict(f"model {name!r} belongs to tenant {m.tenant_id!r}")
                clash = s.scalars(
                    select(AliasRow.id).where(
                        AliasRow.model_id == m.id, AliasRow.alias == req.version
                    )
                ).first()
                if clash is not None:
                    raise conflict(f"{req.version!r} is already an alias of {name!r}")
                exists = s.scalars(
                    select(VersionRow.id).where(
                        VersionRow.model_id == m.id, VersionRow.version == req.version
                    )
                ).first()
                if exists is not None:
                    raise conflict(f"{name}@{req.version} exists; versions are immutable")
                v = VersionRow(
                    model_id=m.id,
                    version=req.version,
                    stage="Staging",
                    artifact_digest=req.artifact_digest,
                    artifact_size=req.artifact_size,
                    kind=req.kind,
                    format=req.format,
                    policy_digest=req.policy_digest,
                    git_sha=req.git_sha,
                    container_digest=req.container_digest,
                    dataset_snapshot=req.dataset_snapshot,
                    signature_digest=req.signature_digest,
                    attestation_digest=req.attestation_digest,
                    card_json=json.dumps(req.card, sort_keys=True),
                    files_json=json.dumps(
                        [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in req.files]
                    ),
                    publisher=caller.actor,
                    created_at=now,
                    revoked=False,
                    quarantined=False,
                )
                s.add(v)
                s.flush()
                for hexdigest in sorted(referenced):
                    s.add(VersionBlobRow(version_id=v.id, digest=hexdigest))
                s.add(
                    StageChangeRow(
                        version_id=v.id, stage="Staging", previous=None, actor=caller.actor, at=now
                    )
                )
                self._log(
                    s,
                    caller,
                    "publish",
                    name,
                    req.version,
                    {"artifact_digest": req.artifact_digest, "tenant_id": tenant},
                )
                return version_record(m.name, v, None, now)
        except IntegrityError as exc:
            raise conflict(f"{name}@{req.version} was published concurrently") from exc

    @staticmethod
    def _check_artifact(req: PublishRequest, blob_size: BlobSize, blob_read: BlobRead) -> set[str]:
        """Every digest named must be an uploaded blob of the stated size; a directory's
        manifest must list exactly ``files``. Returns the hex digests referenced."""
        check_digest(req.artifact_digest, "artifact_digest")
        check_digest(req.policy_digest, "policy_digest")
        if req.artifact_size < 0:
            raise bad_request("artifact_size must be >= 0")
        if not req.files:
            raise bad_request("files must list at least one file")
        art_hex = req.artifact_digest.removeprefix("sha256:")
        referenced = {art_hex}
        for f in req.files:
            if not re.fullmatch(r"[0-9a-f]{64}", f.sha256) or f.size < 0:
                raise bad_request(f"bad file entry {f.path!r}")
            try:
                check_relative_path(f.path)
            except FormatError as exc:
                raise bad_request(exc.message) from exc
            if blob_size(f.sha256) != f.size:
                raise bad_request(
                    f"file {f.path!r}: no uploaded blob sha256:{f.sha256} of {f.size} bytes"
                )
            referenced.add(f.sha256)
        if req.kind == "file":
            if len(req.files) != 1 or req.files[0].sha256 != art_hex:
                raise bad_request(
                    "a file artifact has exactly one file whose sha256 is the artifact's"
                )
            if req.files[0].size != req.artifact_size:
                raise bad_request("artifact_size differs from the file's size")
        elif req.kind == "directory":
            if sum(f.size for f in req.files) != req.artifact_size:
                raise bad_request("artifact_size must be the sum of the files' sizes")
            if blob_size(art_hex) is None:
                raise bad_request(f"no uploaded manifest blob {req.artifact_digest}")
            try:
                expected = manifest_bytes(req.files)
            except Exception as exc:
                raise bad_request(f"files do not form a valid manifest: {exc}") from exc
            if blob_read(art_hex, MAX_MANIFEST_BYTES) != expected:
                raise bad_request("the manifest blob does not list exactly these files")
        else:
            raise bad_request("kind must be 'file' or 'directory'")
        for what, digest in (
            ("signature_digest", req.signature_digest),
            ("attestation_digest", req.attestation_digest),
        ):
            if digest is None:
                continue
            check_digest(digest, what)
            hexpart = digest.removeprefix("sha256:")
            if blob_size(hexpart) is None:
                raise bad_request(f"{what}: no uploaded blob {digest}")
            referenced.add(hexpart)
        return referenced

    def set_stage(self, name: str, version: str, stage: str, caller: Caller) -> dict[str, Any]:
        if stage not in STAGES:
            raise bad_request(f"stage must be one of {', '.join(STAGES)}")
        with self.tx(write=True) as s:
            m = self._model(s, name, caller)
            v = self._version(s, m, version, lock=True)
            if v.revoked and stage != "Archived":
                raise conflict(f"{name}@{version} is revoked; it can only be archived")
            now = rfc3339(utc_now())
            previous = v.stage
            v.stage = stage
            s.add(
                StageChangeRow(
                    version_id=v.id, stage=stage, previous=previous, actor=caller.actor, at=now
                )
            )
            self._log(s, caller, "stage", name, version, {"stage": stage, "previous": previous})
            return version_record(m.name, v, None, now)

    def set_alias(
        self, name: str, alias: str, version: str, change_ticket: str | None, caller: Caller
    ) -> dict[str, Any]:
        try:
            return self._set_alias(name, alias, version, change_ticket, caller)
        except IntegrityError as exc:  # two first-time creations of one alias at once
            raise conflict(f"alias {name}@{alias} was created concurrently; retry") from exc

    def _set_alias(
        self, name: str, alias: str, version: str, change_ticket: str | None, caller: Caller
    ) -> dict[str, Any]:
        check_name(alias, "alias")
        if change_ticket is not None and (not change_ticket.strip() or len(change_ticket) > 256):
            raise bad_request("change_ticket must be 1..256 characters or null")
        with self.tx(write=True) as s:
            m = self._model(s, name, caller)
            clash = s.scalars(
                select(VersionRow.id).where(
                    VersionRow.model_id == m.id, VersionRow.version == alias
                )
            ).first()
            if clash is not None:
                raise conflict(f"{alias!r} is a version of {name!r}; an alias may not shadow it")
            v = self._version(s, m, version)
            if v.revoked:
                raise conflict(f"{name}@{version} is revoked; no alias may point at it")
            now = rfc3339(utc_now())
            a = s.scalars(
                select(AliasRow).where(AliasRow.model_id == m.id, AliasRow.alias == alias)
            ).first()
            previous: str | None = None
            if a is None:
                a = AliasRow(
                    model_id=m.id,
                    alias=alias,
                    version_id=v.id,
                    revision=1,
                    change_ticket=change_ticket,
                    updated_at=now,
                    updated_by=caller.actor,
                )
                s.add(a)
                s.flush()
            else:
                old = s.get(VersionRow, a.version_id)
                previous = old.version if old else None
                # Atomic increment: concurrent moves can never reuse a revision.
                s.execute(
                    update(AliasRow)
                    .where(AliasRow.id == a.id)
                    .values(
                        revision=AliasRow.revision + 1,
                        version_id=v.id,
                        change_ticket=change_ticket,
                        updated_at=now,
                        updated_by=caller.actor,
                    )
                )
                s.refresh(a)
            self._log(
                s,
                caller,
                "alias",
                name,
                version,
                {
                    "alias": alias,
                    "revision": a.revision,
                    "previous": previous,
                    "change_ticket": change_ticket,
                },
            )
            return {
                "alias": alias,
                "version": version,
                "revision": a.revision,
                "change_ticket": change_ticket,
            }

    def revoke(self, name: str, version: str, reason: str, caller: Caller) -> dict[str, Any]:
        reason = _reason(reason)
        with self.tx(write=True) as s:
            m = self._model(s, name, caller)
            v = self._version(s, m, version, lock=True)
            if v.revoked:
                raise conflict(f"{name}@{version} is already revoked (revocation is final)")
            v.revoked = True
            v.revoked_reason = reason
            self._log(s, caller, "revoke", name, version, {"reason": reason})
            return version_record(m.name, v, None, rfc3339(utc_now()))

    def quarantine(self, name: str, version: str, reason: str, caller: Caller) -> dict[str, Any]:
        reason = _reason(reason)
        with self.tx(write=True) as s:
            m = self._model(s, name, caller)
            v = self._version(s, m, version, lock=True)
            if v.revoked:
                raise conflict(f"{name}@{version} is revoked (final); quarantine is moot")
            v.quarantined = True
            v.quarantine_reason = reason
            self._log(s, caller, "quarantine", name, version, {"reason": reason})
            return version_record(m.name, v, None, rfc3339(utc_now()))

    def release(self, name: str, version: str, caller: Caller) -> dict[str, Any]:
        with self.tx(write=True) as s:
            m = self._model(s, name, caller)
            v = self._version(s, m, version, lock=True)
            if v.revoked:
                raise conflict(f"{name}@{version} is revoked; revocation is final")
            if not v.quarantined:
                raise conflict(f"{name}@{version} is not quarantined")
            previous = v.quarantine_reason
            v.quarantined = False
            v.quarantine_reason = None
            self._log(s, caller, "release", name, version, {"previous_reason": previous})
            return version_record(m.name, v, None, rfc3339(utc_now()))


def files_from_json(items: Sequence[dict[str, Any]]) -> tuple[FileEntry, ...]:
    return tuple(FileEntry(str(i["path"]), str(i["sha256"]), int(i["size"])) for i in items)
