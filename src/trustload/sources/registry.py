"""The trustload Registry's own blob store as a model source (the embedded default)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from trustload.decision import ReasonCode
from trustload.digests import FileEntry, ModelLayout, manifest_bytes
from trustload.errors import TrustloadError
from trustload.sources.base import Fetched

if TYPE_CHECKING:
    from trustload.cache import BlobCache, BlobResult
    from trustload.client.api import RegistryClient
    from trustload.facts import VersionRecord

MAX_EVIDENCE_BYTES = 16 * 1024 * 1024
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def parse_manifest(raw: bytes) -> tuple[FileEntry, ...]:
    """Parse a directory manifest blob strictly; it must be canonical (re-serialises
    to the same bytes), so two different manifests can never share a digest."""
    from trustload.client.api import RecordError, parse_files

    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrustloadError(ReasonCode.DIGEST_MISMATCH, "manifest blob is not JSON") from exc
    if not isinstance(doc, dict) or set(doc) != {"mediaType", "files"}:
        raise TrustloadError(ReasonCode.DIGEST_MISMATCH, "manifest blob has unexpected fields")
    try:
        entries = parse_files(doc["files"])
    except RecordError as exc:
        raise TrustloadError(ReasonCode.DIGEST_MISMATCH, f"manifest: {exc.message}") from exc
    if manifest_bytes(entries) != raw:
        raise TrustloadError(ReasonCode.DIGEST_MISMATCH, "manifest blob is not canonical")
    return entries


def check_total(record: VersionRecord, max_bytes: int) -> None:
    """``registry.max_download_bytes`` bounds a whole model, whatever serves it."""
    total = sum(f.size for f in record.files)
    if total > max_bytes:
        raise TrustloadError(
            ReasonCode.REGISTRY_UNAVAILABLE,
            f"model of {total} bytes exceeds registry.max_download_bytes={max_bytes}",
        )


class RegistrySource:
    """Blobs by digest from the Registry (file blob, or manifest then every file blob;
    signature bundle; attestation), through the shared content-addressed cache."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def close(self) -> None:
        """The client belongs to the gate run, which closes it."""

    def fetch(
        self, cache: BlobCache, record: VersionRecord, max_bytes: int, *, quick: bool = False
    ) -> Fetched:
        """Every downloaded blob, the manifest and the evidence are hashed here. With
        ``quick``, cached *model files* of the right size are handed on unhashed: the
        engine hashes exactly those bytes on this same load (digest pin and signature),
        and a mismatch there sends the gate back here with ``quick=False``."""
        from trustload.cache import facts_of

        check_total(record, max_bytes)
        results: list[BlobResult] = []

        def get(digest: str, size: int | None, limit: int, label: str, model: bool = False) -> Path:
            res = cache.ensure(
                self.client, digest, size, limit=limit, label=label, reverify=not (quick and model)
            )
            results.append(res)
            return res.path

        if record.kind == "file":
            entry = record.files[0]
            where = get(record.artifact_digest, record.artifact_size, max_bytes, entry.path, True)
            layout = ModelLayout(
                "file", entry.path, ((entry.path, where),), known=facts_of(results)
            )
        else:
            manifest_path = get(record.artifact_digest, None, MAX_MANIFEST_BYTES, "manifest")
            listed = parse_manifest(manifest_path.read_bytes())
            if listed != record.files:
                raise TrustloadError(
                    ReasonCode.DIGEST_MISMATCH, "the manifest blob does not list the record's files"
                )
            paths = [
                (e.path, get(f"sha256:{e.sha256}", e.size, max_bytes, e.path, True))
                for e in record.files
            ]
            layout = ModelLayout("directory", record.name, tuple(paths), known=facts_of(results))

        def evidence(digest: str | None, label: str) -> bytes | None:
            if digest is None:
                return None
            return get(digest, None, MAX_EVIDENCE_BYTES, label).read_bytes()

        signature = evidence(record.signature_digest, "signature")
        attestation = evidence(record.attestation_digest, "attestation")
        return Fetched(layout, signature, attestation).count(results)
