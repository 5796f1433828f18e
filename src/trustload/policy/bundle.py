"""Loading a policy bundle from disk, bounded, and its deterministic ``policy_digest``.

A policy bundle is a directory holding one or more ``*.rego`` files (at any depth)
and, optionally, one ``data.json`` at its root. Those are the only files the gate
loads, so they are the only files the digest covers: a README or a ``.git`` folder
beside them changes neither the decision nor the digest.

``policy_digest`` construction (R2.7, INTERFACE ``trustload policy digest``)::

    listing = b"trustload-policy-bundle-v1\\n"
            + for each bundle file, sorted by the UTF-8 bytes of its relative path:
                  hex(sha256(file bytes)) + b"  " + relative POSIX path (UTF-8) + b"\\n"
    policy_digest = "sha256:" + hex(sha256(listing))

Each per-file line is exactly what ``sha256sum`` prints, so the digest can be
reproduced with stock tools (see ``docs/policy.md``). Nothing but relative paths and
file contents enter the listing: mtimes, permissions, owners and the directory's
own location do not. Paths containing a newline, a backslash or non-UTF-8 bytes are
refused, so the listing is unambiguous.

Bounds (a policy is configuration, so breaking one is a usage error, exit 2):
at most :data:`MAX_FILES` files, :data:`MAX_FILE_BYTES` per file,
:data:`MAX_TOTAL_BYTES` in all, :data:`MAX_DEPTH` directory levels, and a
``data.json`` nested at most :data:`MAX_JSON_DEPTH` deep with no duplicate keys.
Symlinks and special files anywhere in the bundle are refused (a symlink could pull
in a file the digest's author never saw).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trustload.errors import FormatError, UsageError
from trustload.formats.jsonstrict import loads_strict

DIGEST_HEADER = b"trustload-policy-bundle-v1\n"
MAX_FILES = 256
MAX_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 16
MAX_JSON_DEPTH = 64
DATA_FILE = "data.json"


@dataclass(frozen=True)
class PolicyFile:
    """One bundle file: relative POSIX path and its exact bytes."""

    path: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class PolicyBundle:
    """The files of a bundle, read once; the digest and the compiler see the same bytes."""

    files: tuple[PolicyFile, ...]  # sorted by UTF-8 path bytes

    @property
    def digest(self) -> str:
        return digest_of(self.files)

    @property
    def modules(self) -> tuple[tuple[str, str], ...]:
        """``(path, source)`` of every ``.rego`` file (UTF-8 checked at load)."""
        return tuple(
            (f.path, f.content.decode("utf-8")) for f in self.files if f.path.endswith(".rego")
        )

    @property
    def data(self) -> dict[str, Any] | None:
        for f in self.files:
            if f.path == DATA_FILE:
                return parse_data_json(f.content)
        return None


def digest_of(files: tuple[PolicyFile, ...] | list[PolicyFile]) -> str:
    """The documented listing-then-hash construction over already-read files."""
    listing = bytearray(DIGEST_HEADER)
    for f in sorted(files, key=lambda f: f.path.encode("utf-8")):
        listing += f.sha256.encode("ascii") + b"  " + f.path.encode("utf-8") + b"\n"
    return "sha256:" + hashlib.sha256(bytes(listing)).hexdigest()


def _is_bundle_file(rel: str) -> bool:
    return rel.endswith(".rego") or rel.split("/")[-1] == DATA_FILE


def _check_path(rel: str, full: Path) -> None:
    if "\n" in rel or "\r" in rel or "\\" in rel or "\x00" in rel:
        raise UsageError(f"policy bundle: unsupported character in file name {full!s:.200}")
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(f"policy bundle: file name is not UTF-8: {full!s:.200}") from exc


def parse_data_json(content: bytes) -> dict[str, Any]:
    """Strict ``data.json``, by the loader signed evidence goes through
    (:func:`trustload.formats.jsonstrict.loads_strict`: UTF-8, no duplicate keys, bounded
    size and nesting, no NaN or oversized integers), and it must be an object."""
    try:
        doc = loads_strict(
            content,
            what="policy bundle: data.json",
            max_bytes=MAX_FILE_BYTES,
            max_depth=MAX_JSON_DEPTH,
        )
    except FormatError as exc:
        raise UsageError(exc.message) from None
    if not isinstance(doc, dict):
        raise UsageError("policy bundle: data.json must hold a JSON object")
    return doc


def _read_bounded(full: Path, limit: int) -> bytes:
    fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"policy bundle: not a regular file: {full}")
        if st.st_size > limit:
            raise UsageError(
                f"policy bundle: {full} is {st.st_size} bytes, over the {limit}-byte limit"
            )
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise UsageError(f"policy bundle: {full} grew over the {limit}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_bundle(path: str | os.PathLike[str]) -> PolicyBundle:
    """Read a policy bundle directory once, within the documented bounds.

    Raises :class:`UsageError` for a missing directory, a bundle with no ``.rego``
    file, an oversized or non-UTF-8 file, a nested ``data.json``, a symlink or a
    special file.
    """
    root = Path(path)
    try:
        st = root.lstat()
    except OSError as exc:
        raise UsageError(f"policy bundle: no such directory: {root}") from exc
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"policy bundle: not a directory (symlinks refused): {root}")
    files: list[PolicyFile] = []
    total = 0

    def on_error(exc: OSError) -> None:
        raise UsageError(f"policy bundle: cannot read {exc.filename}: {exc.strerror}")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=on_error):
        base = Path(dirpath)
        rel_dir = base.relative_to(root)
        if len(rel_dir.parts) > MAX_DEPTH:
            raise UsageError(f"policy bundle: deeper than {MAX_DEPTH} levels: {base}")
        for name in sorted(dirnames):
            if (base / name).is_symlink():
                raise UsageError(f"policy bundle: symlink refused: {base / name}")
        for name in sorted(filenames):
            full = base / name
            rel = full.relative_to(root).as_posix()
            _check_path(rel, full)
            if not _is_bundle_file(rel):
                continue
            mode = full.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise UsageError(f"policy bundle: symlink refused: {full}")
            if not stat.S_ISREG(mode):
                raise UsageError(f"policy bundle: special file refused: {full}")
            if rel != DATA_FILE and not rel.endswith(".rego"):
                raise UsageError(
                    f"policy bundle: only a root-level data.json is supported, found {rel}"
                )
            if len(files) >= MAX_FILES:
                raise UsageError(f"policy bundle: more than {MAX_FILES} policy files")
            content = _read_bounded(full, MAX_FILE_BYTES)
            total += len(content)
            if total > MAX_TOTAL_BYTES:
                raise UsageError(f"policy bundle: over {MAX_TOTAL_BYTES} bytes in all")
            if rel.endswith(".rego"):
                try:
                    content.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise UsageError(f"policy bundle: {rel} is not UTF-8") from exc
            else:
                parse_data_json(content)
            files.append(PolicyFile(rel, content))
    if not any(f.path.endswith(".rego") for f in files):
        raise UsageError(f"policy bundle: no .rego file in {root}")
    files.sort(key=lambda f: f.path.encode("utf-8"))
    return PolicyBundle(tuple(files))


def policy_digest(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of the bundle at ``path`` (see the module docstring)."""
    return load_bundle(path).digest
