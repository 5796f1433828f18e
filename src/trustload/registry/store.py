"""The Registry's records (SQLAlchemy 2): models, immutable versions, stage history,
aliases, revocation / quarantine and the append-only governance log.

Design notes:

* A version's content fields (digests, size, kind, card, provenance, publisher) are
  written once. Database triggers refuse any later change to them, refuse un-revoking
  and refuse any UPDATE/DELETE of the governance log and stage history, so even a
  bug in this code (or an operator with SQL access through the app's role) cannot
  rewrite history silently (defence in depth; the code never tries).
* Tenancy: a model name belongs to a tenant (unique per tenant): tenants A and B may
  each have ``risk``. Every lookup by name is scoped by the caller's tenant, admins
  included, so another tenant's model is not "hidden", it is simply not there, and
  publishing a name another tenant uses behaves exactly as for a free name.
* Blobs: storage is content-addressed and shared; visibility rests on ownership
  (``blob_owners``: the tenant uploaded it), never on a reference. A publish may name
  only blobs its tenant owns; any other digest answers like one nobody uploaded.
* Revocation binds the bytes: revoking a version also revokes its artifact digest
  Registry-wide (``revoked_digests``, append-only); such a digest is never published
  again (409) and every record carrying it reads ``revoked: true``.
* Schema changes are numbered migrations (migrations.py) recorded in
  ``schema_version``; they run in order under a lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from trustload.decision import rfc3339, utc_now
from trustload.errors import UsageError
from trustload.facts import STAGES
from trustload.identifiers import Kind, is_valid, strip_blank
from trustload.registry.auth import Caller
from trustload.registry.errors import bad_request, conflict, not_found
from trustload.registry.migrations import MIGRATIONS, WRITE_OPTION, migrate, schema_version
from trustload.registry.publishing import (
    BlobRead,
    BlobSize,
    PublishRequest,
    check_artifact,
    files_from_json,
    named_blobs,
)

__all__ = [
    "MIGRATIONS",
    "PublishRequest",
    "Store",
    "files_from_json",
    "make_engine",
    "migrate",
    "schema_version",
]

MAX_REASON = 2000
MAX_LOG_PAGE = 1000
MAX_VERSIONS_LISTED = 10_000


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    """A model: its name is unique within its tenant only (migration 3)."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_models_tenant_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
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
    artifact_uri: Mapped[str | None] = mapped_column(String(600), nullable=True)


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
    """Which blobs a version references (a record; visibility rests on ``blob_owners``)."""

    __tablename__ = "version_blobs"
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)


Index("ix_version_blobs_digest", VersionBlobRow.digest)


class BlobOwnerRow(Base):
    """Which tenant uploaded which blob: the only basis of blob visibility. Storage is
    content-addressed (deduplicated across tenants); visibility never is."""

    __tablename__ = "blob_owners"
    tenant_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[str] = mapped_column(String(40))


class RevokedDigestRow(Base):
    """Artifact digests revoked anywhere (append-only, database-guarded): revocation
    binds the bytes, not a version label."""

    __tablename__ = "revoked_digests"
    digest: Mapped[str] = mapped_column(String(71), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(256))
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(1200))
    revoked_at: Mapped[str] = mapped_column(String(40))


class GovernanceEventRow(Base):
    __tablename__ = "governance_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str | None] = mapped_column(String(256), nullable=True, index=True)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(1200))
    action: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail_json: Mapped[str] = mapped_column(Text)


_VERSION_COLUMNS = tuple(cast(Table, VersionRow.__table__).c)

# Hot-path statements, built once: building a select costs more than running it.
# Every lookup by name is scoped by the caller's tenant: another tenant's model of the
# same name is simply not in the result, so it cannot answer differently.
# ``digest_revoked_reason``: the artifact's bytes were revoked anywhere (revocation
# binds the digest), looked up in the same query.
_DIGEST_REVOKED = RevokedDigestRow.reason.label("digest_revoked_reason")
_MODEL_BY_NAME = select(ModelRow.id).where(
    ModelRow.name == bindparam("name"), ModelRow.tenant_id == bindparam("tenant")
)
_RESOLVE_VERSION = (
    select(*_VERSION_COLUMNS, _DIGEST_REVOKED)
    .select_from(ModelRow)
    .join(VersionRow, VersionRow.model_id == ModelRow.id)
    .outerjoin(RevokedDigestRow, RevokedDigestRow.digest == VersionRow.artifact_digest)
    .where(
        ModelRow.name == bindparam("name"),
        ModelRow.tenant_id == bindparam("tenant"),
        VersionRow.version == bindparam("ref"),
    )
)
_RESOLVE_ALIAS = (
    select(
        AliasRow.alias.label("alias_name"),
        AliasRow.revision.label("alias_revision"),
        AliasRow.change_ticket.label("alias_ticket"),
        *_VERSION_COLUMNS,
        _DIGEST_REVOKED,
    )
    .select_from(ModelRow)
    .join(AliasRow, AliasRow.model_id == ModelRow.id)
    .join(VersionRow, VersionRow.id == AliasRow.version_id)
    .outerjoin(RevokedDigestRow, RevokedDigestRow.digest == VersionRow.artifact_digest)
    .where(
        ModelRow.name == bindparam("name"),
        ModelRow.tenant_id == bindparam("tenant"),
        AliasRow.alias == bindparam("ref"),
    )
)
_VERSION_OF_MODEL = (
    select(*_VERSION_COLUMNS, _DIGEST_REVOKED)
    .outerjoin(RevokedDigestRow, RevokedDigestRow.digest == VersionRow.artifact_digest)
    .where(VersionRow.model_id == bindparam("model_id"), VersionRow.version == bindparam("version"))
)
_VERSIONS_OF_MODEL = (
    select(*_VERSION_COLUMNS, _DIGEST_REVOKED)
    .outerjoin(RevokedDigestRow, RevokedDigestRow.digest == VersionRow.artifact_digest)
    .where(VersionRow.model_id == bindparam("model_id"))
    .order_by(VersionRow.id)
    .limit(MAX_VERSIONS_LISTED)
)
_BLOB_OWNED = select(BlobOwnerRow.digest).where(
    BlobOwnerRow.digest == bindparam("digest"), BlobOwnerRow.tenant_id == bindparam("tenant")
)
_BLOB_REFERENCED = (
    select(VersionBlobRow.version_id)
    .join(VersionRow, VersionRow.id == VersionBlobRow.version_id)
    .join(ModelRow, ModelRow.id == VersionRow.model_id)
    .where(VersionBlobRow.digest == bindparam("digest"), ModelRow.tenant_id == bindparam("tenant"))
    .limit(1)
)


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


def version_record(
    name: str,
    v: Any,
    alias: AliasView | None,
    served_at: str,
    digest_revoked: str | None = None,
) -> dict[str, Any]:
    """The version record of docs/registry-api.md. ``v`` is a VersionRow or a Core row
    with the same column names; ``digest_revoked`` is the reason its artifact digest was
    revoked anywhere (a Core row may carry it as ``digest_revoked_reason``)."""
    if digest_revoked is None:
        digest_revoked = getattr(v, "digest_revoked_reason", None)
    revoked = bool(v.revoked) or digest_revoked is not None
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
        "revoked": revoked,
        "revoked_reason": v.revoked_reason if v.revoked else digest_revoked,
        "quarantined": bool(v.quarantined),
        "quarantine_reason": v.quarantine_reason,
        "card": _loads(v.card_json),
        "signature_digest": v.signature_digest,
        "attestation_digest": v.attestation_digest,
        "files": _loads(v.files_json),
        "artifact_uri": v.artifact_uri,
        "alias": alias.alias if alias else None,
        "alias_revision": alias.revision if alias else None,
        "change_ticket": alias.change_ticket if alias else None,
        "publisher": v.publisher,
        "created_at": v.created_at,
        "served_at": served_at,
    }


def check_name(value: str, what: str) -> str:
    if not is_valid(Kind.NAME, value):
        raise bad_request(f"{what} must be {Kind.NAME.value} (the whole string)")
    return value


def _reason(reason: str) -> str:
    reason = strip_blank(reason)
    if not reason or len(reason) > MAX_REASON:
        raise bad_request(f"a reason of 1..{MAX_REASON} characters is required")
    return reason


WRITE_LOCK_KEY = 0x74726C7772  # "trlwr"; the migrations' key is another


class Store:
    """Every Registry operation, each in one transaction, each logged."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.write_engine = engine.execution_options(**{WRITE_OPTION: True})

    @contextmanager
    def tx(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction. ``write`` ones take the database's write lock up front:
        SQLite's BEGIN IMMEDIATE (a read-then-write never fails on a stale snapshot
        under load), PostgreSQL's transaction advisory lock :data:`WRITE_LOCK_KEY`.

        The advisory lock is what makes replicas safe: every write transaction logs
        a governance event, and ids come from a sequence taken at insert. Without one
        writer at a time, replica B could commit event N+1 while replica A's event N
        is still open, and a reader paging the log with ``after=N+1`` (an auditor, a
        SIEM shipper) would never see N. Serialised, ids commit in order, and ``at``
        is monotonic with them."""
        bind = self.write_engine if write else self.engine
        with Session(bind, expire_on_commit=False) as s, s.begin():
            if write and self.engine.dialect.name == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK_KEY})
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
                tenant_id=caller.tenant_id,
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
        m = s.scalars(
            select(ModelRow).where(ModelRow.name == name, ModelRow.tenant_id == caller.tenant_id)
        ).first()
        if m is None:  # another tenant's model of this name is simply not there
            raise not_found(f"no model {name!r}")
        return m

    @staticmethod
    def _digest_revoked(s: Session, artifact_digest: str) -> str | None:
        """The reason ``artifact_digest`` was revoked anywhere, or None."""
        return s.scalars(
            select(RevokedDigestRow.reason).where(RevokedDigestRow.digest == artifact_digest)
        ).first()

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
        row = conn.execute(_MODEL_BY_NAME, {"name": name, "tenant": caller.tenant_id}).first()
        if row is None:
            raise not_found(f"no model {name!r}")
        return int(row.id)

    def resolve(self, name: str, ref: str, caller: Caller) -> dict[str, Any]:
        """A version wins over an alias of the same name (publish and alias refuse
        such clashes anyway). Two indexed queries on the hot path, both scoped by the
        caller's tenant."""
        check_name(name, "model name")
        check_name(ref, "ref")
        params = {"name": name, "ref": ref, "tenant": caller.tenant_id}
        with self.read() as conn:
            row = conn.execute(_RESOLVE_VERSION, params).first()
            if row is not None:
                return version_record(name, row, None, rfc3339(utc_now()))
            row = conn.execute(_RESOLVE_ALIAS, params).first()
            if row is not None:
                view = AliasView(row.alias_name, row.alias_revision, row.alias_ticket)
                return version_record(name, row, view, rfc3339(utc_now()))
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
        """Tenancy on blobs, within the caller's tenant only (admins included).
        Publishers and admins see what their tenant uploaded; consumers see what a
        version of their tenant references. References never widen visibility: a
        publish may only reference blobs its tenant uploaded."""
        query = _BLOB_REFERENCED if caller.role == "consumer" else _BLOB_OWNED
        with self.read() as conn:
            params = {"digest": hexdigest, "tenant": caller.tenant_id}
            return conn.execute(query, params).first() is not None

    def governance_log(
        self, caller: Caller, *, model: str | None, after: int, limit: int
    ) -> list[dict[str, Any]]:
        limit = max(1, min(limit, MAX_LOG_PAGE))
        with self.tx() as s:
            # Bound as BIGINT: ids are INTEGER on PostgreSQL, and an INTEGER-typed
            # parameter above 2**31 - 1 is a DataError there (a 500), not "no events".
            after_param = bindparam("after", after, type_=BigInteger)
            q = select(GovernanceEventRow).where(
                GovernanceEventRow.id > after_param,
                GovernanceEventRow.tenant_id == caller.tenant_id,
            )
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

    def record_upload(self, caller: Caller, hexdigest: str, size: int) -> bool:
        """Record that the caller's tenant holds (uploaded) this blob; True when it did
        not before. The answer depends on this tenant only: whether another tenant
        uploaded the same bytes never shows (the blob store hashed the whole body and
        stored it the same way in both cases)."""
        for attempt in (1, 2):
            try:
                with self.tx(write=True) as s:
                    owned = s.get(BlobOwnerRow, (caller.tenant_id, hexdigest)) is not None
                    if not owned:
                        s.add(
                            BlobOwnerRow(
                                tenant_id=caller.tenant_id,
                                digest=hexdigest,
                                created_at=rfc3339(utc_now()),
                            )
                        )
                    self._log(
                        s,
                        caller,
                        "upload_blob",
                        None,
                        None,
                        {"digest": f"sha256:{hexdigest}", "size": size, "created": not owned},
                    )
                    return not owned
            except IntegrityError:  # the same tenant uploading it twice at once
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

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
        if tenant != caller.tenant_id:
            raise bad_request("card.tenant_id must be the publisher's own tenant")
        visible = self._visible_blobs(caller, named_blobs(req))

        def visible_size(hexdigest: str) -> int | None:
            # Another tenant's blob answers exactly like one nobody uploaded.
            return blob_size(hexdigest) if hexdigest in visible else None

        referenced = check_artifact(req, visible_size, blob_read)
        now = rfc3339(utc_now())
        try:
            with self.tx(write=True) as s:
                if self._digest_revoked(s, req.artifact_digest) is not None:
                    raise conflict(
                        f"artifact {req.artifact_digest} is revoked; a revoked digest can "
                        "never be published again"
                    )
                m = s.scalars(
                    select(ModelRow).where(ModelRow.name == name, ModelRow.tenant_id == tenant)
                ).first()
                if m is None:
                    m = ModelRow(name=name, tenant_id=tenant, created_at=now)
                    s.add(m)
                    s.flush()
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
                    artifact_uri=req.artifact_uri,
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

    def _visible_blobs(self, caller: Caller, digests: set[str]) -> set[str]:
        """Which of ``digests`` the caller's tenant may reference (it uploaded them)."""
        if not digests:
            return set()
        with self.read() as conn:
            rows = conn.execute(
                select(BlobOwnerRow.digest).where(
                    BlobOwnerRow.tenant_id == caller.tenant_id,
                    BlobOwnerRow.digest.in_(sorted(digests)),
                )
            )
            return {str(r.digest) for r in rows}

    def set_stage(self, name: str, version: str, stage: str, caller: Caller) -> dict[str, Any]:
        if stage not in STAGES:
            raise bad_request(f"stage must be one of {', '.join(STAGES)}")
        with self.tx(write=True) as s:
            m = self._model(s, name, caller)
            v = self._version(s, m, version, lock=True)
            digest_revoked = self._digest_revoked(s, v.artifact_digest)
            if (v.revoked or digest_revoked is not None) and stage != "Archived":
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
            return version_record(m.name, v, None, now, digest_revoked)

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
        blank = change_ticket is not None and not strip_blank(change_ticket)
        if blank or (change_ticket is not None and len(change_ticket) > 256):
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
            if v.revoked or self._digest_revoked(s, v.artifact_digest) is not None:
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
        try:
            return self._revoke(name, version, _reason(reason), caller)
        except IntegrityError as exc:  # two versions of one digest revoked at once
            raise conflict(f"{name}@{version}: revoked concurrently; retry") from exc

    def _revoke(self, name: str, version: str, reason: str, caller: Caller) -> dict[str, Any]:
        with self.tx(write=True) as s:
            m = self._model(s, name, caller)
            v = self._version(s, m, version, lock=True)
            if v.revoked:
                raise conflict(f"{name}@{version} is already revoked (revocation is final)")
            v.revoked = True
            v.revoked_reason = reason
            now = rfc3339(utc_now())
            if self._digest_revoked(s, v.artifact_digest) is None:
                # Revocation binds the bytes: the digest is revoked Registry-wide, for
                # good (append-only table), whatever name or version carries it.
                s.add(
                    RevokedDigestRow(
                        digest=v.artifact_digest,
                        tenant_id=caller.tenant_id,
                        model=m.name,
                        version=version,
                        reason=reason,
                        actor=caller.actor,
                        revoked_at=now,
                    )
                )
            self._log(s, caller, "revoke", name, version, {"reason": reason})
            return version_record(m.name, v, None, now)

    def quarantine(self, name: str, version: str, reason: str, caller: Caller) -> dict[str, Any]:
        reason = _reason(reason)
        with self.tx(write=True) as s:
            m = self._model(s, name, caller)
            v = self._version(s, m, version, lock=True)
            if v.revoked or self._digest_revoked(s, v.artifact_digest) is not None:
                raise conflict(f"{name}@{version} is revoked (final); quarantine is moot")
            v.quarantined = True
            v.quarantine_reason = reason
            self._log(s, caller, "quarantine", name, version, {"reason": reason})
            return version_record(m.name, v, None, rfc3339(utc_now()))

    def release(self, name: str, version: str, caller: Caller) -> dict[str, Any]:
        with self.tx(write=True) as s:
            m = self._model(s, name, caller)
            v = self._version(s, m, version, lock=True)
            if v.revoked or self._digest_revoked(s, v.artifact_digest) is not None:
                raise conflict(f"{name}@{version} is revoked; revocation is final")
            if not v.quarantined:
                raise conflict(f"{name}@{version} is not quarantined")
            previous = v.quarantine_reason
            v.quarantined = False
            v.quarantine_reason = None
            self._log(s, caller, "release", name, version, {"previous_reason": previous})
            return version_record(m.name, v, None, rfc3339(utc_now()))
