"""What a publish request may name: pure checks over the request and the blobs the
publishing tenant can see.

The callables passed in (``blob_size``, ``blob_read``) already hide every blob the
tenant may not reference (store.py answers ``None`` for them), so a digest another
tenant uploaded and a digest nobody uploaded take the same path here and get the same
answer, message included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trustload.digests import FileEntry, check_relative_path, manifest_bytes
from trustload.errors import FormatError
from trustload.identifiers import Kind
from trustload.registry.errors import bad_request

MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_EVIDENCE_BYTES = 16 * 1024 * 1024
"""The largest signature or attestation blob a version may name (the gate reads
evidence up to this bound; anything larger could never be verified)."""

BlobSize = Callable[[str], "int | None"]
BlobRead = Callable[[str, int], bytes]


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
    artifact_uri: str | None = None  # an OCI version: its bytes live in an OCI registry


def check_digest(value: str, what: str) -> str:
    if not Kind.DIGEST.accepts(value):
        raise bad_request(f"{what} must be sha256:<64 lowercase hex>")
    return value


def files_from_json(items: Sequence[dict[str, Any]]) -> tuple[FileEntry, ...]:
    return tuple(FileEntry(str(i["path"]), str(i["sha256"]), int(i["size"])) for i in items)


def named_blobs(req: PublishRequest) -> set[str]:
    """Every well-formed hex digest the request names (to look up visibility once)."""
    out = {f.sha256 for f in req.files}
    for digest in (req.artifact_digest, req.signature_digest, req.attestation_digest):
        if digest is not None and Kind.DIGEST.accepts(digest):
            out.add(digest.removeprefix("sha256:"))
    return out


def _check_files(req: PublishRequest, blob_size: BlobSize) -> set[str]:
    referenced: set[str] = set()
    for f in req.files:
        if not Kind.HEX64.accepts(f.sha256) or f.size < 0:
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
    return referenced


def _check_layout(req: PublishRequest, blob_size: BlobSize, blob_read: BlobRead) -> None:
    art_hex = req.artifact_digest.removeprefix("sha256:")
    if req.kind == "file":
        if len(req.files) != 1 or req.files[0].sha256 != art_hex:
            raise bad_request("a file artifact has exactly one file whose sha256 is the artifact's")
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


def _check_evidence(req: PublishRequest, blob_size: BlobSize, model_blobs: set[str]) -> set[str]:
    """Signature and attestation: uploaded (and visible), bounded in size, and evidence,
    not model: a model file or the manifest never doubles as its own signature or
    attestation. (One statement may serve as both: a signed provenance statement naming
    the file is a valid signature of it, tests/attacks/test_statements.py.)"""
    referenced: set[str] = set()
    for what, digest in (
        ("signature_digest", req.signature_digest),
        ("attestation_digest", req.attestation_digest),
    ):
        if digest is None:
            continue
        check_digest(digest, what)
        hexpart = digest.removeprefix("sha256:")
        size = blob_size(hexpart)
        if size is None:
            raise bad_request(f"{what}: no uploaded blob {digest}")
        if size > MAX_EVIDENCE_BYTES:
            raise bad_request(f"{what}: blob {digest} exceeds {MAX_EVIDENCE_BYTES} bytes")
        if hexpart in model_blobs:
            raise bad_request(f"{what}: blob {digest} is a model blob of this version")
        referenced.add(hexpart)
    return referenced


def _check_oci(req: PublishRequest) -> None:
    """An OCI version: pinned by its manifest digest, which is ``artifact_digest``; its
    files (the manifest's layers) obey the directory rules; its signature and
    attestation live beside it in the OCI registry (cosign), not in this one. The
    Registry holds none of its bytes, so it references none of its blobs."""
    from trustload.errors import UsageError
    from trustload.oci.reference import parse_artifact_uri

    assert req.artifact_uri is not None
    try:
        ref = parse_artifact_uri(req.artifact_uri)
    except UsageError as exc:
        raise bad_request(str(exc)) from exc
    if ref.digest != req.artifact_digest:
        raise bad_request("artifact_uri must be pinned to artifact_digest (the manifest digest)")
    if req.kind != "directory":
        raise bad_request("an OCI version is a directory model (one file per layer)")
    if req.signature_digest is not None or req.attestation_digest is not None:
        raise bad_request("an OCI version's signature and attestation live in its OCI registry")
    if sum(f.size for f in req.files) != req.artifact_size:
        raise bad_request("artifact_size must be the sum of the files' sizes")
    try:
        manifest_bytes(req.files)  # path rules, no duplicates
    except Exception as exc:
        raise bad_request(f"files do not form a valid model: {exc}") from exc
    for f in req.files:
        if not Kind.HEX64.accepts(f.sha256) or f.size < 0:
            raise bad_request(f"bad file entry {f.path!r}")


def check_artifact(req: PublishRequest, blob_size: BlobSize, blob_read: BlobRead) -> set[str]:
    """Every digest named must be an uploaded blob of the stated size; a directory's
    manifest must list exactly ``files``. Returns the hex digests referenced."""
    check_digest(req.artifact_digest, "artifact_digest")
    check_digest(req.policy_digest, "policy_digest")
    if req.artifact_size < 0:
        raise bad_request("artifact_size must be >= 0")
    if not req.files:
        raise bad_request("files must list at least one file")
    if req.artifact_uri is not None:
        _check_oci(req)
        return set()
    model_blobs = _check_files(req, blob_size)
    _check_layout(req, blob_size, blob_read)
    model_blobs.add(req.artifact_digest.removeprefix("sha256:"))
    return model_blobs | _check_evidence(req, blob_size, model_blobs)
