"""The model-signature check: is this exact set of bytes what a trusted signer signed?

Pure except for reading the layout's files (streamed, in parallel threads via
``sha256_fd``) and the configured trusted root. The bundle is crypto-verified first;
only then are the signed resources compared with the bytes on disk, in constant time.
A file added, removed or changed is SIGNATURE_INVALID; any error is a denial.

A file the cache has just downloaded (or re-verified) comes with its digests, computed
in that same pass over its bytes (``layout.known``, :mod:`trustload.streamhash`): while
that fact still describes the file, its whole-file and shard digests are compared with
the signed ones instead of reading the file again. A fact is compared exactly like a
fresh hash, so a wrong one can only fail the check, never pass it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from trustload.decision import CheckResult, ReasonCode
from trustload.digests import FileEntry, ModelLayout, sha256_fd, workers
from trustload.errors import FormatError, SignatureError, TrustloadError
from trustload.facts import TrustAnchors
from trustload.formats.dsse import IN_TOTO_PAYLOAD_TYPE, parses_as_pae
from trustload.formats.intoto import Statement, parse_statement, subject_matches
from trustload.formats.oms import PREDICATE_TYPE as OMS_PREDICATE_TYPE
from trustload.formats.oms import OmsManifest, Resource, parse_manifest
from trustload.streamhash import known_entries, usable_facts

NAME = "signature"
MAX_COSIGN_SIG = 16 * 1024
SMALL_MODEL_BYTES = 8 * 1024 * 1024
"""Below this, hashing in the calling thread beats starting a thread pool."""


@dataclass(frozen=True)
class SignatureOutcome:
    result: CheckResult
    files: tuple[FileEntry, ...] | None
    signer: str | None


def _fail(code: ReasonCode, detail: str, start: float) -> SignatureOutcome:
    ms = (time.perf_counter() - start) * 1000.0
    return SignatureOutcome(CheckResult.failed(NAME, code, detail[:500], ms), None, None)


def _open(where: Path) -> int:
    fd = os.open(where, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SignatureError(f"not a regular file: {where}")
    return fd


def _total_size(layout: ModelLayout) -> int:
    total = 0
    for _rel, where in layout.files:
        try:
            total += os.stat(where, follow_symlinks=False).st_size
        except OSError:
            return SMALL_MODEL_BYTES  # let the hashing pass report it
    return total


def _hash_whole(layout: ModelLayout) -> list[FileEntry]:
    """Every file's SHA-256: from the download's facts where they hold, else hashed."""
    facts = usable_facts(layout)
    known = [FileEntry(rel, facts[rel].sha256, facts[rel].size) for rel in facts]
    todo = [item for item in layout.files if item[0] not in facts]

    def one(item: tuple[str, Path]) -> FileEntry:
        rel, where = item
        fd = _open(where)
        try:
            return FileEntry(rel, sha256_fd(fd), os.fstat(fd).st_size)
        finally:
            os.close(fd)

    if len(todo) <= 1 or _total_size(layout) < SMALL_MODEL_BYTES:
        return sorted([*known, *(one(i) for i in todo)])
    with ThreadPoolExecutor(max_workers=min(workers(), len(todo))) as pool:
        return sorted([*known, *pool.map(one, todo)])


def _layout_map(layout: ModelLayout, manifest: OmsManifest) -> dict[str, Path]:
    """Signed resource path -> where its bytes are; the two sets must be identical."""
    paths = layout.paths()
    signed = {r.path for r in manifest.resources}
    if layout.kind == "file":
        ((rel, where),) = layout.files
        if signed == {"."} or signed == {rel}:
            return {next(iter(signed)): where}
        raise SignatureError("signature covers a directory, but the model is a single file")
    if "." in signed:
        raise SignatureError("signature covers a single file, but the model is a directory")
    missing = sorted(signed - paths.keys())
    extra = sorted(paths.keys() - signed)
    if missing or extra:
        raise SignatureError(
            f"model files differ from the signed set: missing={missing[:5]} unsigned={extra[:5]}"
        )
    return {p: paths[p] for p in signed}


def _verify_files(layout: ModelLayout, manifest: OmsManifest) -> tuple[FileEntry, ...] | None:
    where = _layout_map(layout, manifest)
    if manifest.method == "files":
        entries = _hash_whole(layout)
        want = {r.path: r.digest for r in manifest.resources}
        key_of = (lambda rel: ".") if (layout.kind == "file" and "." in want) else (lambda rel: rel)
        bad = [e.path for e in entries if not hmac.compare_digest(e.sha256, want[key_of(e.path)])]
        if bad:
            raise SignatureError(f"content differs from the signature: {bad[:5]}")
        return tuple(entries)
    return _verify_shards(layout, manifest, where)


def _verify_shards(
    layout: ModelLayout, manifest: OmsManifest, where: dict[str, Path]
) -> tuple[FileEntry, ...] | None:
    """Shard mode: a shard's digest comes from the download's fact when it holds exactly
    that range, else it is hashed on its own thread; coverage must equal the file size.
    Returns the whole-file digests when facts gave them for every file."""
    rel_at = {loc: rel for rel, loc in layout.files}
    by_rel = usable_facts(layout)
    facts = {p: by_rel[rel_at[loc]] for p, loc in where.items() if rel_at.get(loc) in by_rel}

    def known(res: Resource) -> str | None:
        fact = facts.get(res.path)
        return None if fact is None else fact.shard_digest(res.start or 0, res.end or 0)

    to_read = {r.path for r in manifest.resources if known(r) is None} | (where.keys() - facts)
    fds: dict[str, int] = {}
    try:
        for path in sorted(to_read):
            fds[path] = _open(where[path])
        for path in where:
            size = os.fstat(fds[path]).st_size if path in fds else facts[path].size
            ends = [r.end or 0 for r in manifest.resources if r.path == path]
            if max(ends, default=0) != size:
                raise SignatureError(f"signed shards of {path!r} do not cover its {size} bytes")

        def one(res: Resource) -> bool:
            got = known(res)
            if got is None:
                got = sha256_fd(fds[res.path], res.start or 0, res.end)
            return hmac.compare_digest(got, res.digest)

        if to_read:
            with ThreadPoolExecutor(max_workers=min(workers(), len(manifest.resources))) as pool:
                results = list(pool.map(one, manifest.resources))
        else:
            results = [one(r) for r in manifest.resources]
        if not all(results):
            bad = [r.name for r, ok in zip(manifest.resources, results, strict=True) if not ok]
            raise SignatureError(f"content differs from the signature: {bad[:5]}")
        return known_entries(layout)
    finally:
        for fd in fds.values():
            os.close(fd)


def _looks_json(bundle: bytes) -> bool:
    return bundle.lstrip()[:1] == b"{"


def _refuse_pae_blob(layout: ModelLayout) -> None:
    """A detached blob signature never vouches for a file whose bytes are a DSSE PAE.

    Blob signatures and DSSE signatures are both ECDSA over SHA-256 of a message, made
    with the same keys; without this rule every envelope a trusted key ever signed
    would be a valid blob signature for the file ``PAE(type, payload)``.
    """
    ((_rel, where),) = layout.files
    fd = _open(where)
    try:
        size = os.fstat(fd).st_size
        if parses_as_pae(lambda off, n: os.pread(fd, n, off), size):
            raise SignatureError(
                "file content is a DSSE pre-authentication encoding: a detached blob "
                "signature cannot vouch for it (DSSE/blob signature confusion)"
            )
    finally:
        os.close(fd)


def _cosign_blob(
    layout: ModelLayout, bundle: bytes, anchors: TrustAnchors
) -> tuple[tuple[FileEntry, ...], str]:
    """cosign ``sign-blob`` detached signature: base64 ECDSA over the file's SHA-256."""
    from trustload.crypto.keys import fingerprint
    from trustload.crypto.verify import trusted_keys

    if layout.kind not in ("file", "digest"):
        raise SignatureError("a detached cosign signature can only sign a single file")
    if anchors.require_key_tlog or anchors.rekor_keys:
        # A bare signature cannot carry a SET: accepting it would let a signer (or a
        # stolen key) skip the transparency log simply by dropping the bundle around it.
        raise SignatureError(
            "a Rekor SET is required; a detached signature has none (use sign-blob --bundle)",
            ReasonCode.TRANSPARENCY_UNAVAILABLE,
        )
    if len(bundle) > MAX_COSIGN_SIG:
        raise SignatureError("detached signature too large")
    try:
        sig = base64.b64decode(bundle.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("detached signature is neither a bundle nor base64") from None
    if not sig:
        raise SignatureError("detached signature is empty")
    if layout.kind == "digest":
        entries: list[FileEntry] = []
        digest = bytes.fromhex(_digest_of(layout)[len("sha256:") :])
    else:
        _refuse_pae_blob(layout)
        entries = _hash_whole(layout)
        digest = bytes.fromhex(entries[0].sha256)
    from trustload.crypto.verify import verify_key_message_signature

    for key in trusted_keys(anchors):
        if verify_key_message_signature(key, sig, digest):
            return tuple(entries), fingerprint(key)
    raise SignatureError("detached signature does not verify with any trusted key")


def _digest_of(layout: ModelLayout) -> str:
    if layout.digest is None or not layout.digest.startswith("sha256:"):
        raise SignatureError("digest artifact without a sha256 digest")
    return layout.digest


def _generic_statement(
    layout: ModelLayout, statement: Statement
) -> tuple[tuple[FileEntry, ...], str]:
    """A signed in-toto statement that is not a model-signing manifest (``cosign
    attest-blob``, SLSA provenance, ...) vouches for its subjects' digests. That is a
    signature of one file or one digest, when a subject carries its SHA-256; a
    directory has no single digest a third party would sign, so it needs the manifest."""
    ptype = f"{statement.predicate_type!r:.120}"
    if layout.kind not in ("file", "digest"):
        raise SignatureError(
            "a directory model needs a model-signing (OMS) signature, "
            f"not an in-toto statement of predicateType {ptype}"
        )
    files: tuple[FileEntry, ...] = ()
    if layout.kind == "digest":
        digest = _digest_of(layout)
    else:
        files = tuple(_hash_whole(layout))
        digest = f"sha256:{files[0].sha256}"
    if not subject_matches(statement, digest):
        raise SignatureError(
            f"in-toto statement of predicateType {ptype} has no subject with {digest}"
        )
    return files, f"in-toto statement, predicateType {ptype}, subject {digest}"


def _cosign_blob_bundle(
    layout: ModelLayout, bundle: bytes, anchors: TrustAnchors, now: datetime
) -> tuple[tuple[FileEntry, ...], str]:
    """cosign ``sign-blob --bundle``: ``{base64Signature, cert, rekorBundle}``, verified
    offline exactly as an image signature's layer (:mod:`trustload.crypto.cosign`)."""
    from trustload.crypto.cosign import verify_cosign_signature
    from trustload.formats.cosign import parse_blob_bundle

    if layout.kind not in ("file", "digest"):
        raise SignatureError("a cosign blob bundle can only sign a single file or digest")
    parsed = parse_blob_bundle(bundle, code=ReasonCode.SIGNATURE_INVALID)
    if layout.kind == "digest":
        entries: list[FileEntry] = []
        digest = bytes.fromhex(_digest_of(layout)[len("sha256:") :])
    else:
        entries = _hash_whole(layout)
        digest = bytes.fromhex(entries[0].sha256)
    signer = verify_cosign_signature(
        digest,
        parsed.signature,
        certificate=parsed.certificate,
        chain=[],
        rekor=parsed.rekor,
        anchors=anchors,
        now=now,
        code=ReasonCode.SIGNATURE_INVALID,
    )
    return tuple(entries), signer


def check_model_signature(
    layout: ModelLayout, bundle: bytes | None, anchors: TrustAnchors, *, now: datetime
) -> SignatureOutcome:
    """Verify ``bundle`` for the exact bytes of ``layout`` (see module docstring)."""
    start = time.perf_counter()
    if bundle is None or len(bundle.strip()) == 0:
        return _fail(ReasonCode.SIGNATURE_MISSING, "no model signature", start)
    try:
        if not _looks_json(bundle):
            files, signer = _cosign_blob(layout, bundle, anchors)
            ms = (time.perf_counter() - start) * 1000.0
            return SignatureOutcome(
                CheckResult.passed(NAME, f"cosign blob signature by {signer}", ms), files, signer
            )
        from trustload.formats.cosign import looks_like_blob_bundle

        if looks_like_blob_bundle(bundle):
            files, signer = _cosign_blob_bundle(layout, bundle, anchors, now)
            ms = (time.perf_counter() - start) * 1000.0
            return SignatureOutcome(
                CheckResult.passed(NAME, f"cosign blob bundle by {signer}", ms), files, signer
            )
        from trustload.crypto.verify import verify_bundle

        artifact_sha256: bytes | None = None
        whole: list[FileEntry] | None = None
        if layout.kind == "digest":
            artifact_sha256 = bytes.fromhex(_digest_of(layout)[len("sha256:") :])
        elif layout.kind == "file" and b'"messageSignature"' in bundle:
            whole = _hash_whole(layout)
            artifact_sha256 = bytes.fromhex(whole[0].sha256)
        verified = verify_bundle(bundle, anchors, now=now, artifact_sha256=artifact_sha256)
        if verified.envelope is None:
            if artifact_sha256 is None:
                raise SignatureError("message signature over a directory is not a model signature")
            if layout.kind == "file":
                _refuse_pae_blob(layout)
            ms = (time.perf_counter() - start) * 1000.0
            return SignatureOutcome(
                CheckResult.passed(NAME, f"blob signature by {verified.signer}", ms),
                tuple(whole or ()),
                verified.signer,
            )
        if verified.envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise SignatureError(
                f"unexpected DSSE payloadType {verified.envelope.payload_type!r:.80}"
            )
        statement = parse_statement(verified.envelope.payload, code=ReasonCode.SIGNATURE_INVALID)
        if statement.predicate_type != OMS_PREDICATE_TYPE:
            files, what = _generic_statement(layout, statement)
            ms = (time.perf_counter() - start) * 1000.0
            detail = f"{what}, signer {verified.signer}"
            return SignatureOutcome(CheckResult.passed(NAME, detail, ms), files, verified.signer)
        if layout.kind == "digest":
            raise SignatureError(
                "a model-signing signature covers files, not one digest: give the model path"
            )
        manifest = parse_manifest(statement)
        measured = _verify_files(layout, manifest)
        ms = (time.perf_counter() - start) * 1000.0
        detail = (
            f"{manifest.method} mode, {len(manifest.resources)} resources, signer {verified.signer}"
        )
        return SignatureOutcome(CheckResult.passed(NAME, detail, ms), measured, verified.signer)
    except TrustloadError as exc:
        code = exc.code
        if code not in (
            ReasonCode.SIGNATURE_INVALID,
            ReasonCode.SIGNATURE_MISSING,
            ReasonCode.TRANSPARENCY_UNAVAILABLE,
        ):
            code = ReasonCode.SIGNATURE_INVALID
        return _fail(code, exc.message, start)
    except FormatError as exc:  # pragma: no cover - FormatError is a TrustloadError
        return _fail(ReasonCode.SIGNATURE_INVALID, exc.message, start)
    except Exception as exc:
        return _fail(ReasonCode.SIGNATURE_INVALID, f"{type(exc).__name__}: {exc}", start)
