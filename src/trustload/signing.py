"""Producer side: model signatures (OpenSSF model-signing v1.0) and SLSA attestations.

``sign_model`` writes a Sigstore bundle v0.3 whose DSSE envelope carries the
model-signing v1.0 in-toto statement over every file's SHA-256; it verifies with
model-signing 1.1.1's key verifier (``use_elliptic_key_verifier``) and with trustload.
Every file, whatever its size, is signed in model-signing's *files* mode: its resource
digest is its whole-file SHA-256, which is also its content address in the Registry and
the gate's cache. A cold gate therefore needs one SHA-256 pass over each model byte, the
one it computes while downloading (issue 10, "One pass over the bytes"); a shard-mode
signature would need a second set of digests over the same bytes. Shard mode stays an
explicit opt-in (``shard_size``) for single files, for interop tests and for signers
that want re-verification spread over cores at the price of that second pass.

``attest_bytes`` writes a bare DSSE envelope (``application/vnd.in-toto+json``) holding
an in-toto Statement v1 with an SLSA provenance v1 predicate (see
:mod:`trustload.formats.slsa` for the field names, the validity window included).
"""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from trustload.crypto.keys import PrivateKey, load_private_key, model_signing_hint, sign_message
from trustload.decision import utc_now
from trustload.digests import ModelLayout, measure, sha256_fd, workers
from trustload.errors import UsageError
from trustload.formats.dsse import IN_TOTO_PAYLOAD_TYPE, pae
from trustload.formats.oms import Resource, build_statement
from trustload.formats.slsa import SLSA_V1, build_predicate, sha256_hex_of
from trustload.fsutil import atomic_write_bytes
from trustload.streamhash import shard_ranges

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def _dsse_envelope(key: PrivateKey, payload: bytes) -> dict[str, object]:
    sig = sign_message(key, pae(IN_TOTO_PAYLOAD_TYPE, payload))
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "signatures": [{"sig": base64.b64encode(sig).decode("ascii"), "keyid": ""}],
    }


def _hash_resources(
    layout: ModelLayout, shard_size: int | None = None
) -> tuple[str, list[Resource], int | None]:
    """Hash a layout into model-signing resources, in parallel threads, streaming.

    Files mode unless ``shard_size`` asks for shard mode (single files only)."""
    if shard_size is not None and (layout.kind != "file" or shard_size <= 0):
        raise UsageError("shard mode takes a positive shard size and a single-file model")

    def open_checked(where: Path) -> int:
        fd = os.open(where, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UsageError(f"not a regular file: {where}")
        return fd

    if layout.kind == "file":
        ((_rel, where),) = layout.files
        fd = open_checked(where)
        try:
            if shard_size is None:
                return "files", [Resource(".", None, None, sha256_fd(fd))], None
            ranges = shard_ranges(os.fstat(fd).st_size, shard_size)
            if not ranges:
                raise UsageError("shard mode cannot sign an empty file")
            with ThreadPoolExecutor(max_workers=min(workers(), len(ranges))) as pool:
                digests = list(pool.map(lambda r: sha256_fd(fd, r[0], r[1]), ranges))
            return (
                "shards",
                [Resource(".", s, e, d) for (s, e), d in zip(ranges, digests, strict=True)],
                shard_size,
            )
        finally:
            os.close(fd)

    def one(item: tuple[str, Path]) -> Resource:
        rel, where = item
        fd = open_checked(where)
        try:
            return Resource(rel, None, None, sha256_fd(fd))
        finally:
            os.close(fd)

    if not layout.files:
        raise UsageError("model directory has no files to sign")
    with ThreadPoolExecutor(max_workers=min(workers(), len(layout.files))) as pool:
        return "files", list(pool.map(one, layout.files)), None


def sign_layout_bundle(
    layout: ModelLayout,
    key_path: Path,
    *,
    password: bytes | None = None,
    shard_size: int | None = None,
) -> bytes:
    """Sign a model layout; return the model-signing v1.0 bundle bytes (files mode
    unless ``shard_size`` is given, see the module docstring)."""
    key = load_private_key(key_path, password)
    method, resources, shards = _hash_resources(layout, shard_size)
    statement = build_statement(layout.name, method, resources, shards)
    payload = json.dumps(statement, indent=2).encode("utf-8")
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": model_signing_hint(key.public_key())},
            "tlogEntries": [],
        },
        "dsseEnvelope": _dsse_envelope(key, payload),
    }
    return json.dumps(bundle).encode("utf-8")


def default_signature_path(path: Path) -> Path:
    """``PATH.sig`` beside a file; ``PATH/../NAME.sig`` for a directory."""
    p = Path(path)
    if p.is_dir():
        resolved = p.resolve()
        return resolved.parent / f"{resolved.name}.sig"
    return p.with_name(p.name + ".sig")


def _refuse_inside(model: Path, out: Path) -> None:
    if model.is_dir():
        try:
            out.resolve().relative_to(model.resolve())
        except ValueError:
            return
        raise UsageError(f"refusing to write the signature inside the model directory: {out}")


def sign_model(
    path: Path,
    key_path: Path,
    out: Path | None = None,
    *,
    password: bytes | None = None,
    shard_size: int | None = None,
) -> Path:
    """Sign a model file or directory; symlinks and special files are refused.

    ``shard_size`` opts a single file into model-signing's shard mode (see the module
    docstring for why files mode is the default)."""
    path = Path(path)
    layout = ModelLayout.from_path(path)
    target = Path(out) if out is not None else default_signature_path(path)
    _refuse_inside(path, target)
    data = sign_layout_bundle(layout, key_path, password=password, shard_size=shard_size)
    atomic_write_bytes(target, data)
    return target


def attest_bytes(
    *,
    subject_name: str,
    artifact_digest: str,
    key_path: Path,
    git_sha: str,
    container_digest: str,
    dataset_snapshot: str,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    password: bytes | None = None,
) -> bytes:
    """A DSSE envelope over an in-toto v1 statement with SLSA v1 provenance."""
    hexpart = sha256_hex_of(artifact_digest) if artifact_digest.startswith("sha256:") else None
    if hexpart is None:
        raise UsageError(f"artifact digest must be sha256:<64 hex>, got {artifact_digest!r:.80}")
    for name, value in (
        ("git-sha", git_sha),
        ("container-digest", container_digest),
        ("dataset-snapshot", dataset_snapshot),
    ):
        if not isinstance(value, str) or not value.strip() or len(value) > 1024:
            raise UsageError(f"--{name} must be a non-empty string")
    for name, moment in (("not-before", not_before), ("not-after", not_after)):
        if moment is not None and moment.tzinfo is None:
            raise UsageError(f"--{name} must carry a time zone")
    if not_before and not_after and not_after <= not_before:
        raise UsageError("--not-after must be later than --not-before")
    key = load_private_key(key_path, password)
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": subject_name, "digest": {"sha256": hexpart}}],
        "predicateType": SLSA_V1,
        "predicate": build_predicate(
            subject_name=subject_name,
            git_sha=git_sha,
            container_digest=container_digest,
            dataset_snapshot=dataset_snapshot,
            not_before=not_before,
            not_after=not_after,
            invocation_id=f"urn:uuid:{uuid.uuid4()}",
            started_on=utc_now(),
        ),
    }
    payload = json.dumps(statement, indent=2, sort_keys=False).encode("utf-8")
    return json.dumps(_dsse_envelope(key, payload), indent=2).encode("utf-8")


def attest(
    path: Path,
    key_path: Path,
    *,
    git_sha: str,
    container_digest: str,
    dataset_snapshot: str,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    out: Path | None = None,
    password: bytes | None = None,
) -> Path:
    """Attest a model on disk; subject digest = :func:`trustload.digests.measure`."""
    path = Path(path)
    measured = measure(path)
    name = path.resolve().name
    data = attest_bytes(
        subject_name=name,
        artifact_digest=measured.digest,
        key_path=key_path,
        git_sha=git_sha,
        container_digest=container_digest,
        dataset_snapshot=dataset_snapshot,
        not_before=not_before,
        not_after=not_after,
        password=password,
    )
    target = Path(out) if out is not None else (path.resolve().parent / f"{name}.att.json")
    _refuse_inside(path, target)
    atomic_write_bytes(target, data)
    return target
