"""The OpenSSF model-signing v1.0 statement (``https://model_signing/signature/v1.0``).

Shape (as model-signing 1.1.1 writes it)::

    subject:   [{"name": <model name>, "digest": {"sha256": H}}]
    predicate: {"serialization": {"method": "files"|"shards", "hash_type": "sha256",
                                   "allow_symlinks": false, ["shard_size": N],
                                   ["ignore_paths": [...]]},
                "resources": [{"name": P, "algorithm": "sha256", "digest": <hex>}, ...]}

``H`` is SHA-256 over the concatenated raw resource digests in listed order (it is
*not* a file's SHA-256 nor trustload's artifact digest). A single-file model has the
one resource name ``"."``; shard resources are named ``"<path>:<start>:<end>"``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from trustload.decision import ReasonCode
from trustload.digests import check_relative_path
from trustload.errors import FormatError
from trustload.formats.intoto import Statement
from trustload.identifiers import Kind, is_valid

PREDICATE_TYPE = "https://model_signing/signature/v1.0"
MAX_RESOURCES = 200_000
CODE = ReasonCode.SIGNATURE_INVALID


@dataclass(frozen=True)
class Resource:
    path: str  # "." for a single-file model
    start: int | None  # shard range, None in files mode
    end: int | None
    digest: str  # lower-case hex sha256

    @property
    def name(self) -> str:
        return self.path if self.start is None else f"{self.path}:{self.start}:{self.end}"


@dataclass(frozen=True)
class OmsManifest:
    model_name: str
    method: str  # "files" | "shards"
    shard_size: int | None
    resources: tuple[Resource, ...]


def sort_key(res: Resource) -> tuple[tuple[str, ...], int, int]:
    """model-signing orders resources by PurePosixPath parts, then shard range."""
    return (PurePosixPath(res.path).parts, res.start or 0, res.end or 0)


def root_digest(resources: tuple[Resource, ...] | list[Resource]) -> str:
    h = hashlib.sha256()
    for res in resources:
        h.update(bytes.fromhex(res.digest))
    return h.hexdigest()


def resource_algorithm(method: str, shard_size: int | None) -> str:
    """model-signing names shard digests ``sha256-sharded-<shard_size>``."""
    return f"sha256-sharded-{shard_size}" if method == "shards" else "sha256"


def build_statement(
    model_name: str, method: str, resources: list[Resource], shard_size: int | None = None
) -> dict[str, Any]:
    ordered = sorted(resources, key=sort_key)
    serialization: dict[str, Any] = {
        "method": method,
        "hash_type": "sha256",
        "allow_symlinks": False,
    }
    if method == "shards":
        serialization["shard_size"] = shard_size
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": model_name, "digest": {"sha256": root_digest(ordered)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": serialization,
            "resources": [
                {
                    "name": r.name,
                    "algorithm": resource_algorithm(method, shard_size),
                    "digest": r.digest,
                }
                for r in ordered
            ],
        },
    }


def _path_ok(path: str) -> str:
    return path if path == "." else check_relative_path(path)


def parse_manifest(statement: Statement) -> OmsManifest:
    """Validate a model-signing v1.0 statement and its internal consistency."""
    if statement.predicate_type != PREDICATE_TYPE:
        raise FormatError(
            CODE, f"not a model signature: predicateType {statement.predicate_type!r:.80}"
        )
    if len(statement.subjects) != 1:
        raise FormatError(CODE, "model signature must have exactly one subject")
    subject = statement.subjects[0]
    want_root = subject.get("sha256")
    if want_root is None:
        raise FormatError(CODE, "model signature subject has no sha256 digest")
    pred = statement.predicate
    ser = pred.get("serialization")
    if not isinstance(ser, dict):
        raise FormatError(CODE, "model signature: missing serialization")
    method = ser.get("method")
    if method not in ("files", "shards"):
        raise FormatError(CODE, f"model signature: unsupported method {method!r:.40}")
    if ser.get("hash_type") != "sha256":
        raise FormatError(
            CODE, f"model signature: unsupported hash_type {ser.get('hash_type')!r:.40}"
        )
    if ser.get("allow_symlinks") not in (False, None, "false"):
        raise FormatError(CODE, "model signature allows symlinks: refused")
    shard_size = None
    if method == "shards":
        raw_size = ser.get("shard_size")
        # protobuf Struct (model-signing's writer) turns integers into floats.
        if isinstance(raw_size, float) and raw_size.is_integer():
            raw_size = int(raw_size)
        if not isinstance(raw_size, int) or isinstance(raw_size, bool) or raw_size <= 0:
            raise FormatError(CODE, "model signature: bad shard_size")
        shard_size = raw_size
    allowed_algorithms = {"sha256", resource_algorithm(method, shard_size)}
    raw = pred.get("resources")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_RESOURCES:
        raise FormatError(CODE, "model signature: resources missing or too many")
    resources: list[Resource] = []
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, dict):
            raise FormatError(CODE, "model signature: resource is not an object")
        name, alg, digest = item.get("name"), item.get("algorithm"), item.get("digest")
        if (
            not isinstance(name, str)
            or alg not in allowed_algorithms
            or not isinstance(digest, str)
        ):
            raise FormatError(CODE, "model signature: malformed resource")
        digest = digest.lower()
        if not is_valid(Kind.HEX64, digest):
            raise FormatError(CODE, "model signature: malformed resource digest")
        if name in seen:
            raise FormatError(CODE, f"model signature: duplicate resource {name!r:.80}")
        seen.add(name)
        if method == "files":
            resources.append(Resource(_path_ok(name), None, None, digest))
        else:
            parts = name.rsplit(":", 2)
            if len(parts) != 3 or not all(is_valid(Kind.DECIMAL, p) for p in parts[1:]):
                raise FormatError(CODE, f"model signature: bad shard name {name!r:.80}")
            start, end = int(parts[1]), int(parts[2])
            if end < start:
                raise FormatError(CODE, "model signature: shard ends before it starts")
            resources.append(Resource(_path_ok(parts[0]), start, end, digest))
    if not hmac.compare_digest(root_digest(resources), want_root):
        raise FormatError(CODE, "model signature: subject digest does not cover the resources")
    if method == "shards":
        by_file: dict[str, list[Resource]] = {}
        for r in resources:
            by_file.setdefault(r.path, []).append(r)
        for path, shards in by_file.items():
            shards.sort(key=lambda r: r.start or 0)
            pos = 0
            for r in shards:
                if r.start != pos:
                    raise FormatError(
                        CODE, f"model signature: shards of {path!r:.80} leave a gap or overlap"
                    )
                pos = r.end or 0
    return OmsManifest(subject.name, method, shard_size, tuple(resources))
