"""An :class:`~trustload.oci.reader.OciReader` over an OCI image layout on disk.

The layout is what ``cosign save --dir`` writes (and ``cosign verify --local-image``
reads): ``oci-layout``, ``index.json`` whose entries are annotated
``kind: dev.cosignproject.cosign/image|imageIndex|sigs|atts``, and ``blobs/sha256/<hex>``.
An air-gapped copy is as hostile as a registry: every blob is read through a descriptor
of the exact digest asked for (so no path is ever built from anything but 64 hex
characters), opened without following symlinks, bounded before it is read and hashed
before it is returned.

Tags: cosign's layout has none, so ``sha256-<hex>.sig`` (``.att``) names the ``sigs``
(``atts``) entry of a layout whose image entry is ``sha256:<hex>``; an entry annotated
``org.opencontainers.image.ref.name`` (plain OCI layouts, skopeo) is found by that name.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from pathlib import Path
from typing import Any

from trustload.decision import ReasonCode
from trustload.errors import FormatError, TrustloadError, UsageError
from trustload.formats.jsonstrict import loads_strict
from trustload.oci.reader import MAX_MANIFEST_BYTES, MAX_REFERRERS, Descriptor, Manifest

KIND = "kind"
KIND_IMAGE = "dev.cosignproject.cosign/image"
KIND_INDEX = "dev.cosignproject.cosign/imageIndex"
KIND_SIGS = "dev.cosignproject.cosign/sigs"
KIND_ATTS = "dev.cosignproject.cosign/atts"
REF_NAME = "org.opencontainers.image.ref.name"
MAX_INDEX_ENTRIES = 4096
MAX_REFERRER_SCAN_BYTES = 64 * 1024 * 1024
"""Referrer discovery reads the layout's manifests: at most this many bytes in all."""
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_TAG = re.compile(r"sha256-([0-9a-f]{64})\.(sig|att)")


def _open_regular(path: Path, limit: int, what: str) -> bytes:
    """Read at most ``limit`` bytes of a regular file, never through a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise TrustloadError(ReasonCode.NOT_FOUND, f"{what} not in the layout") from None
    except OSError as exc:
        raise FormatError(
            ReasonCode.IMAGE_SIGNATURE_INVALID, f"{what}: cannot open ({exc.strerror})"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(ReasonCode.IMAGE_SIGNATURE_INVALID, f"{what} is not a regular file")
        if st.st_size > limit:
            raise FormatError(
                ReasonCode.IMAGE_SIGNATURE_INVALID, f"{what} is {st.st_size} bytes (limit {limit})"
            )
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FormatError(ReasonCode.IMAGE_SIGNATURE_INVALID, f"{what} grew past {limit} bytes")
    return data


class LayoutReader:
    """Read-only, digest-checked access to one ``cosign save`` directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise UsageError(f"{self.directory}: no such OCI layout directory")
        if not (self.directory / "index.json").is_file():
            raise UsageError(f"{self.directory}: not an OCI image layout (no index.json)")
        self._entries: list[Descriptor] | None = None

    # -- index.json -------------------------------------------------------------------
    def entries(self) -> list[Descriptor]:
        """The top-level ``index.json`` descriptors (parsed once, strictly, bounded)."""
        if self._entries is None:
            from trustload.formats.cosign import parse_descriptor

            code = ReasonCode.IMAGE_SIGNATURE_INVALID
            raw = _open_regular(self.directory / "index.json", MAX_MANIFEST_BYTES, "index.json")
            obj = loads_strict(raw, code=code, what="index.json", max_bytes=MAX_MANIFEST_BYTES)
            manifests = obj.get("manifests") if isinstance(obj, dict) else None
            if not isinstance(manifests, list):
                raise FormatError(code, "index.json has no manifests list")
            if len(manifests) > MAX_INDEX_ENTRIES:
                raise FormatError(code, f"index.json lists {len(manifests)} manifests: refused")
            self._entries = [
                parse_descriptor(m, code=code, what=f"index.json entry {i}")
                for i, m in enumerate(manifests)
            ]
        return self._entries

    def _entry(self, digest: str) -> Descriptor | None:
        for d in self.entries():
            if d.digest == digest:
                return d
        return None

    # -- OciReader ----------------------------------------------------------------------
    def _read_blob(self, digest: str, limit: int, what: str) -> bytes:
        m = _DIGEST.fullmatch(digest)
        if m is None:
            raise FormatError(ReasonCode.DIGEST_MISMATCH, f"{what}: {digest!r:.80} is not sha256")
        data = _open_regular(self.directory / "blobs" / "sha256" / m[1], limit, what)
        got = hashlib.sha256(data).hexdigest()
        if not hmac.compare_digest(got, m[1]):
            raise TrustloadError(
                ReasonCode.DIGEST_MISMATCH, f"{what} {digest} hashes to sha256:{got}"
            )
        return data

    def manifest(self, digest: str) -> Manifest:
        raw = self._read_blob(digest, MAX_MANIFEST_BYTES, f"manifest {digest}")
        entry = self._entry(digest)
        media = entry.media_type if entry is not None else _media_type_of(raw)
        return Manifest(digest, media, raw)

    def tagged_manifest(self, tag: str) -> Manifest | None:
        named = [d for d in self.entries() if d.annotations.get(REF_NAME) == tag]
        if len(named) > 1:
            raise FormatError(ReasonCode.IMAGE_SIGNATURE_INVALID, f"tag {tag!r} is ambiguous")
        if named:
            return self.manifest(named[0].digest)
        m = _TAG.fullmatch(tag)
        if m is None:
            return None
        subject = f"sha256:{m[1]}"
        images = [
            d
            for d in self.entries()
            if d.annotations.get(KIND) in (KIND_IMAGE, KIND_INDEX) and d.digest == subject
        ]
        if not images:
            return None
        kind = KIND_SIGS if m[2] == "sig" else KIND_ATTS
        found = [d for d in self.entries() if d.annotations.get(KIND) == kind]
        if len(found) > 1:
            raise FormatError(
                ReasonCode.IMAGE_SIGNATURE_INVALID, f"layout holds {len(found)} {kind} manifests"
            )
        return self.manifest(found[0].digest) if found else None

    def blob(self, descriptor: Descriptor, limit: int) -> bytes:
        bound = min(descriptor.size, limit)
        if descriptor.size > limit:
            raise FormatError(
                ReasonCode.IMAGE_SIGNATURE_INVALID,
                f"blob {descriptor.digest} declares {descriptor.size} bytes (limit {limit})",
            )
        data = self._read_blob(descriptor.digest, bound, f"blob {descriptor.digest}")
        if len(data) != descriptor.size:
            raise TrustloadError(
                ReasonCode.DIGEST_MISMATCH,
                f"blob {descriptor.digest} is {len(data)} bytes, descriptor says {descriptor.size}",
            )
        return data

    def referrers(self, digest: str) -> list[Descriptor]:
        """Manifests in ``index.json`` whose ``subject`` is ``digest``, plus the entries of a
        referrers-tag index (``sha256-<hex>``) when the layout carries one."""
        out: list[Descriptor] = []
        tag = digest.replace(":", "-", 1)
        budget = MAX_REFERRER_SCAN_BYTES
        for d in self.entries():
            if len(out) >= MAX_REFERRERS:
                break
            if d.digest == digest or not d.media_type.endswith(
                ("manifest.v1+json", "index.v1+json")
            ):
                continue
            if d.size > min(MAX_MANIFEST_BYTES, budget):
                continue  # bounded work: never read more than the scan budget in all
            budget -= d.size
            try:
                raw = self._read_blob(d.digest, MAX_MANIFEST_BYTES, f"manifest {d.digest}")
                obj: Any = loads_strict(raw, code=ReasonCode.IMAGE_SIGNATURE_INVALID)
            except TrustloadError:
                continue  # the caller sees only what verifies; a broken entry refers to nothing
            if not isinstance(obj, dict):
                continue
            if d.annotations.get(REF_NAME) == tag and isinstance(obj.get("manifests"), list):
                out.extend(_index_descriptors(obj["manifests"], MAX_REFERRERS - len(out)))
                continue
            subj = obj.get("subject")
            if isinstance(subj, dict) and subj.get("digest") == digest:
                out.append(
                    Descriptor(
                        d.media_type,
                        d.digest,
                        d.size,
                        d.annotations,
                        obj.get("artifactType")
                        if isinstance(obj.get("artifactType"), str)
                        else None,
                    )
                )
        return out


def _index_descriptors(items: list[Any], room: int) -> list[Descriptor]:
    from trustload.formats.cosign import parse_descriptor

    out: list[Descriptor] = []
    for item in items[:room]:
        try:
            out.append(
                parse_descriptor(item, code=ReasonCode.IMAGE_SIGNATURE_INVALID, what="referrer")
            )
        except FormatError:
            continue
    return out


def _media_type_of(raw: bytes) -> str:
    try:
        obj = loads_strict(raw, code=ReasonCode.IMAGE_SIGNATURE_INVALID)
    except TrustloadError:
        return ""
    media = obj.get("mediaType") if isinstance(obj, dict) else None
    return media if isinstance(media, str) else ""
