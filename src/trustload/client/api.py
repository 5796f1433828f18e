"""Typed client of the Registry HTTP API (docs/registry-api.md).

Every answer is parsed strictly into facts (:class:`VersionRecord`): a record whose
fields have the wrong type, a malformed digest, an unknown stage or kind, or a file
list that disagrees with the artifact digest is "the Registry answered garbage"
(REGISTRY_UNAVAILABLE), never something the gate half-trusts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from trustload.client.transport import (
    BlobResponse,
    TokenSource,
    Transport,
    certificate_caller,
    unverified_claims,
)
from trustload.config import RegistryClientConfig
from trustload.decision import ReasonCode
from trustload.digests import FileEntry, check_relative_path, format_digest, parse_digest
from trustload.errors import RegistryError, TrustloadError
from trustload.facts import STAGES, ModelCard, Requester, VersionRecord

if TYPE_CHECKING:
    import ssl


MAX_NAME = 256
MAX_TEXT = 4096
MAX_FILES = 100_000
UPLOAD_CHUNK = 1024 * 1024


class RecordError(RegistryError):
    """A Registry answer that does not parse as a version record."""

    def __init__(self, message: str) -> None:
        super().__init__(
            ReasonCode.REGISTRY_UNAVAILABLE, f"malformed record from registry: {message}"
        )


def _str(
    doc: dict[str, Any], key: str, *, optional: bool = False, limit: int = MAX_TEXT
) -> str | None:
    value = doc.get(key)
    if value is None:
        if optional:
            return None
        raise RecordError(f"{key} is missing")
    if not isinstance(value, str) or len(value) > limit:
        raise RecordError(f"{key} is not a string of at most {limit} characters")
    return value


def _req(doc: dict[str, Any], key: str, limit: int = MAX_TEXT) -> str:
    value = _str(doc, key, limit=limit)
    assert value is not None
    return value


def _bool(doc: dict[str, Any], key: str) -> bool:
    value = doc.get(key)
    if not isinstance(value, bool):
        raise RecordError(f"{key} is not a boolean")
    return value


def _int(doc: dict[str, Any], key: str, *, optional: bool = False) -> int | None:
    value = doc.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RecordError(f"{key} is not a non-negative integer")
    return value


def _digest(doc: dict[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = _str(doc, key, optional=optional, limit=80)
    if value is None:
        return None
    try:
        parse_digest(value)
    except TrustloadError as exc:
        raise RecordError(f"{key} is not a sha256 digest") from exc
    return value


def _time(value: Any, key: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise RecordError(f"{key} is not an RFC 3339 timestamp")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise RecordError(f"{key} is not an RFC 3339 timestamp") from exc
    if moment.tzinfo is None:
        raise RecordError(f"{key} has no time zone")
    return moment


def parse_card(doc: Any) -> ModelCard:
    if not isinstance(doc, dict):
        raise RecordError("card is not an object")
    tenant = _req(doc, "tenant_id", MAX_NAME)
    domain = _str(doc, "domain", optional=True, limit=MAX_NAME) or ""
    purpose = doc.get("purpose")
    if not isinstance(purpose, dict):
        raise RecordError("card.purpose is not an object")
    allowed = purpose.get("allowed")
    if not isinstance(allowed, list) or not all(isinstance(p, str) for p in allowed):
        raise RecordError("card.purpose.allowed is not a list of strings")
    fmt = _str(doc, "format", optional=True, limit=MAX_NAME)
    known = {"tenant_id", "domain", "purpose", "revalidate_by", "format"}
    return ModelCard(
        tenant_id=tenant,
        domain=domain,
        purposes_allowed=tuple(allowed),
        revalidate_by=_time(doc.get("revalidate_by"), "card.revalidate_by"),
        format=fmt,
        extra={k: v for k, v in doc.items() if k not in known},
    )


def parse_files(value: Any) -> tuple[FileEntry, ...]:
    if not isinstance(value, list) or len(value) > MAX_FILES:
        raise RecordError("files is not a list")
    entries: list[FileEntry] = []
    for item in value:
        if not isinstance(item, dict):
            raise RecordError("files[] entry is not an object")
        path = _req(item, "path")
        try:
            check_relative_path(path)
        except TrustloadError as exc:
            raise RecordError(f"files[] has an unsafe path {path!r:.80}") from exc
        hexdigest = _req(item, "sha256", 64)
        try:
            parse_digest(format_digest(hexdigest))
        except TrustloadError as exc:
            raise RecordError("files[].sha256 is not 64 lowercase hex digits") from exc
        size = _int(item, "size")
        assert size is not None
        entries.append(FileEntry(path, hexdigest, size))
    entries.sort()
    if len({e.path for e in entries}) != len(entries):
        raise RecordError("files lists a path twice")
    return tuple(entries)


def answers(
    record: VersionRecord, name: str, ref: str, *, alias_allowed: bool = True
) -> VersionRecord:
    """The record must be the one asked for: the same model, and the requested version
    or an alias of that name (then its version is whatever the alias points at). Any
    other record (another model's, another version's, however honestly signed) is a
    Registry not answering the question: REGISTRY_UNAVAILABLE, the code of every
    unusable answer. Not NOT_FOUND: nothing says the requested model is absent."""
    same_version = record.version == ref
    via_alias = alias_allowed and record.alias == ref
    if record.name != name or not (same_version or via_alias):
        raise RecordError(
            f"asked for {name}@{ref}, the answer is the record of "
            f"{record.name}@{record.version} (alias {record.alias!r})"
        )
    return record


def parse_record(doc: Any) -> VersionRecord:
    """Strictly parse one version record (docs/registry-api.md "The version record")."""
    if not isinstance(doc, dict):
        raise RecordError("not a JSON object")
    stage = _req(doc, "stage", 32)
    if stage not in STAGES:
        raise RecordError(f"unknown stage {stage!r:.40}")
    kind = _req(doc, "kind", 16)
    if kind not in ("file", "directory"):
        raise RecordError(f"unknown kind {kind!r:.40}")
    artifact_digest = _digest(doc, "artifact_digest")
    assert artifact_digest is not None
    size = _int(doc, "artifact_size")
    assert size is not None
    files = parse_files(doc.get("files", []))
    if kind == "file":
        if len(files) != 1:
            raise RecordError("a file model must list exactly one file")
        if f"sha256:{files[0].sha256}" != artifact_digest or files[0].size != size:
            raise RecordError("the file entry disagrees with artifact_digest / artifact_size")
    elif not files:
        raise RecordError("a directory model lists no files")
    uri = _artifact_uri(doc, kind, artifact_digest)
    return VersionRecord(
        name=_req(doc, "name", MAX_NAME),
        version=_req(doc, "version", MAX_NAME),
        stage=stage,
        artifact_digest=artifact_digest,
        artifact_size=size,
        kind=kind,
        format=_str(doc, "format", optional=True, limit=MAX_NAME),
        policy_digest=_req(doc, "policy_digest", 80),
        git_sha=_req(doc, "git_sha"),
        container_digest=_req(doc, "container_digest"),
        dataset_snapshot=_req(doc, "dataset_snapshot"),
        revoked=_bool(doc, "revoked"),
        quarantined=_bool(doc, "quarantined"),
        card=parse_card(doc.get("card")),
        signature_digest=_digest(doc, "signature_digest", optional=True),
        attestation_digest=_digest(doc, "attestation_digest", optional=True),
        revoked_reason=_str(doc, "revoked_reason", optional=True),
        quarantine_reason=_str(doc, "quarantine_reason", optional=True),
        alias=_str(doc, "alias", optional=True, limit=MAX_NAME),
        alias_revision=_int(doc, "alias_revision", optional=True),
        change_ticket=_str(doc, "change_ticket", optional=True),
        publisher=_str(doc, "publisher", optional=True),
        created_at=_time(doc.get("created_at"), "created_at"),
        served_at=_time(doc.get("served_at"), "served_at"),
        files=files,
        artifact_uri=uri,
    )


def _artifact_uri(doc: dict[str, Any], kind: str, artifact_digest: str) -> str | None:
    """``artifact_uri`` (OCI versions): pinned to the record's own artifact digest."""
    from trustload.digests import digests_equal
    from trustload.errors import UsageError
    from trustload.oci.reference import parse_artifact_uri

    uri = _str(doc, "artifact_uri", optional=True, limit=512)
    if uri is None:
        return None
    try:
        ref = parse_artifact_uri(uri)
    except UsageError as exc:
        raise RecordError(str(exc)) from exc
    if kind != "directory" or not digests_equal(ref.digest, artifact_digest):
        raise RecordError("artifact_uri must be a directory model pinned to artifact_digest")
    return uri


def _seg(value: str, what: str) -> str:
    """One URL path segment; names with slashes or control characters are refused."""
    if not value or len(value) > MAX_NAME or "/" in value or any(ord(c) < 32 for c in value):
        raise RegistryError(ReasonCode.NOT_FOUND, f"invalid {what} {value!r:.80}")
    return quote(value, safe="")


class RegistryClient:
    """The Registry API as typed calls. One instance pools one TLS connection set."""

    def __init__(
        self,
        cfg: RegistryClientConfig,
        *,
        token_source: TokenSource | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.cfg = cfg
        self.transport = transport or Transport(
            cfg, token_source=token_source, ssl_context=ssl_context
        )

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity
    def requester(self) -> Requester:
        """Who we ask as: the token's tenant/domain/purposes plus the client cert identity."""
        claims = unverified_claims(self.transport.tokens.token())
        tenant = claims.get("tenant_id")
        if not isinstance(tenant, str) or not tenant:
            raise RegistryError(ReasonCode.AUTH_FAILED, "token carries no tenant_id")
        purposes = claims.get("purpose", [])
        if isinstance(purposes, str):
            purposes = [purposes]
        if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
            raise RegistryError(ReasonCode.AUTH_FAILED, "token purpose is not a list of strings")
        domain = claims.get("domain")
        return Requester(
            subject=str(claims.get("sub", "")),
            tenant_id=tenant,
            domain=domain if isinstance(domain, str) else None,
            purposes=tuple(purposes),
            caller=certificate_caller(self.cfg.client_cert),
        )

    # -- reads
    def healthz(self) -> Any:
        return self.transport.request_json("GET", "/healthz", authenticate=False)

    def resolve(self, name: str, ref: str) -> VersionRecord:
        doc = self.transport.request_json(
            "GET", f"/v1/models/{_seg(name, 'model name')}/resolve/{_seg(ref, 'reference')}"
        )
        return answers(parse_record(doc), name, ref)

    def get_version(self, name: str, version: str) -> VersionRecord:
        doc = self.transport.request_json(
            "GET", f"/v1/models/{_seg(name, 'model name')}/versions/{_seg(version, 'version')}"
        )
        return answers(parse_record(doc), name, version, alias_allowed=False)

    def list_versions(self, name: str) -> list[VersionRecord]:
        doc = self.transport.request_json("GET", f"/v1/models/{_seg(name, 'model name')}/versions")
        if not isinstance(doc, dict) or not isinstance(doc.get("versions"), list):
            raise RecordError("versions answer is not {'versions': [...]}")
        return [parse_record(item) for item in doc["versions"]]

    @contextmanager
    def open_blob(self, digest: str, *, offset: int = 0) -> Iterator[BlobResponse]:
        """Stream a blob by digest, from ``offset`` (``Range: bytes=N-``) when resuming."""
        hexpart = parse_digest(digest)
        headers = {"Accept": "application/octet-stream", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self.transport.stream_blob(f"/v1/blobs/sha256/{hexpart}", headers) as resp:
            yield resp

    # -- writes (publisher / admin)
    def upload_blob(self, source: Path | bytes, digest: str | None = None) -> str:
        """Upload bytes or a file under its SHA-256; returns the digest. Streams files."""
        if isinstance(source, bytes):
            digest = digest or format_digest(hashlib.sha256(source).hexdigest())
            size = len(source)
            content: Any = source
        else:
            if digest is None:
                from trustload.digests import sha256_file

                digest = format_digest(sha256_file(source))
            size = source.stat().st_size
            content = _file_chunks(source)
        hexpart = parse_digest(digest)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        doc = self._json_write(
            "POST", f"/v1/blobs/sha256/{hexpart}", content=content, headers=headers
        )
        if not isinstance(doc, dict):
            raise RecordError("upload answer is not an object")
        return digest

    def publish(self, name: str, request: dict[str, Any]) -> VersionRecord:
        doc = self._json_write(
            "POST", f"/v1/models/{_seg(name, 'model name')}/versions", json_body=request
        )
        return parse_record(doc)

    def set_stage(self, name: str, version: str, stage: str) -> Any:
        return self._json_write(
            "PUT",
            f"/v1/models/{_seg(name, 'model name')}/versions/{_seg(version, 'version')}/stage",
            json_body={"stage": stage},
        )

    def set_alias(
        self, name: str, alias: str, version: str, change_ticket: str | None = None
    ) -> Any:
        return self._json_write(
            "PUT",
            f"/v1/models/{_seg(name, 'model name')}/aliases/{_seg(alias, 'alias')}",
            json_body={"version": version, "change_ticket": change_ticket},
        )

    def revoke(self, name: str, version: str, reason: str) -> Any:
        return self._governance(name, version, "revoke", {"reason": reason})

    def quarantine(self, name: str, version: str, reason: str) -> Any:
        return self._governance(name, version, "quarantine", {"reason": reason})

    def release(self, name: str, version: str) -> Any:
        return self._governance(name, version, "release", {})

    def governance_log(self) -> list[dict[str, Any]]:
        doc = self.transport.request_json("GET", "/v1/governance-log")
        if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
            raise RecordError("governance log is not {'events': [...]}")
        return [e for e in doc["events"] if isinstance(e, dict)]

    def _governance(self, name: str, version: str, action: str, body: dict[str, Any]) -> Any:
        return self._json_write(
            "POST",
            f"/v1/models/{_seg(name, 'model name')}/versions/{_seg(version, 'version')}/{action}",
            json_body=body,
        )

    def _json_write(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        import json

        hdrs = {"Accept": "application/json", **(headers or {})}
        with self.transport.stream(
            method, path, headers=hdrs, json_body=json_body, content=content, retry=False
        ) as response:
            body = self.transport.read_capped(response, 8 * 1024 * 1024, str(response.url))
        if not body:
            return {}
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordError("answer is not JSON") from exc


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(UPLOAD_CHUNK):
            yield chunk
