"""Models as OCI artifacts: the CNCF ModelPack layout, written and read (pure).

Write side (``publish --oci``): an OCI image manifest with ``artifactType``
``application/vnd.cncf.model.manifest.v1+json``, a config of media type
``application/vnd.cncf.model.config.v1+json`` (``descriptor``, ``config``, ``modelfs``
with the layers' digests as ``diff_ids``: raw layers are their own uncompressed
content), and one *raw* layer per file, its media type chosen by role and its relative
path in ``org.cncf.model.filepath``.

Read side (the gate, ``publish oci://...``): a manifest is turned into the model's file
list, or refused with a reason. Accepted layers are the raw ones, whichever tool wrote
them: ModelPack (``org.cncf.model.filepath``), ORAS (``org.opencontainers.image.title``,
any media type) and KitOps ModelKit layers that carry one of those two annotations and
are not archives. Archive layers (``...tar``, ``+gzip``, ``+zstd``: ModelPack's packed
variants and KitOps' default ``application/vnd.kitops.modelkit.*.v1.tar+gzip``) are
refused with that reason: unpacking a tar safely is a second set of path rules
(links, devices, overlapping members) that this reader does not implement, and a
refusal is better than a partial one. Every path obeys the directory-model rules of
:func:`trustload.digests.check_relative_path` (no ``..``, no absolute path, no empty
or ``.`` component) and no path appears twice, so a manifest maps onto a directory the
same way a checked-out model does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trustload.decision import ReasonCode
from trustload.digests import FileEntry, check_relative_path, parse_digest
from trustload.errors import FormatError
from trustload.oci.reader import Descriptor
from trustload.oci.registry import OCI_MANIFEST, descriptor_from

ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.cncf.model.config.v1+json"
WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_CONFIG = "application/vnd.cncf.model.weight.config.v1.raw"
DOC = "application/vnd.cncf.model.doc.v1.raw"
CODE = "application/vnd.cncf.model.code.v1.raw"
DATASET = "application/vnd.cncf.model.dataset.v1.raw"
FILEPATH = "org.cncf.model.filepath"
TITLE = "org.opencontainers.image.title"
KITOPS_PREFIX = "application/vnd.kitops.modelkit."
KITOPS_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
MAX_LAYERS = 10_000
OCI_EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"

_CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".txt", ".model", ".tiktoken", ".toml")
_CONFIG_NAMES = ("config", "tokenizer", "generation_config", "special_tokens_map", "vocab")
_DOC_SUFFIXES = (".md", ".rst", ".pdf", ".html")
_DOC_NAMES = ("license", "readme", "notice", "copying", "model_card")
_CODE_SUFFIXES = (".py", ".sh", ".ipynb", ".js", ".ts", ".go", ".rs", ".c", ".cc", ".cpp", ".h")


def layer_media_type(path: str) -> str:
    """The ModelPack role of a file, from its name: weights unless it looks like
    documentation, code or a (tokenizer/model) configuration file."""
    name = path.rsplit("/", 1)[-1].lower()
    stem, _, _ = name.partition(".")
    if stem in _DOC_NAMES or name.endswith(_DOC_SUFFIXES):
        return DOC
    if name.endswith(_CODE_SUFFIXES):
        return CODE
    if stem in _CONFIG_NAMES or name.endswith(_CONFIG_SUFFIXES):
        return WEIGHT_CONFIG
    return WEIGHT


def _descriptor_json(d: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
    if d.annotations:
        out["annotations"] = dict(sorted(d.annotations.items()))
    return out


def config_bytes(name: str, version: str, fmt: str | None, layers: Sequence[Descriptor]) -> bytes:
    """The ModelPack config: the model's name and version, its format, and ``modelfs``."""
    doc: dict[str, Any] = {
        "descriptor": {"name": name, "version": version},
        "config": {"format": fmt} if fmt else {},
        "modelfs": {"type": "layers", "diff_ids": [d.digest for d in layers]},
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def manifest_bytes(config: Descriptor, layers: Sequence[Descriptor]) -> bytes:
    """The image manifest of a ModelPack artifact (compact JSON, layers in path order)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": _descriptor_json(config),
        "layers": [_descriptor_json(d) for d in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ModelManifest:
    """A parsed model manifest: which writer's conventions, and (path, layer) pairs."""

    flavour: str  # "modelpack" | "oras" | "kitops"
    files: tuple[tuple[str, Descriptor], ...]  # sorted by path

    def entries(self) -> tuple[FileEntry, ...]:
        """The files as the Registry records them (path, hex SHA-256, size)."""
        return tuple(FileEntry(p, parse_digest(d.digest), d.size) for p, d in self.files)

    @property
    def size(self) -> int:
        return sum(d.size for _p, d in self.files)


def _refuse(message: str) -> FormatError:
    return FormatError(ReasonCode.DIGEST_MISMATCH, f"model manifest: {message}"[:500])


def _is_archive(media_type: str) -> bool:
    return ".tar" in media_type or media_type.endswith(("+gzip", "+zstd", ".tgz"))


def _flavour(doc: dict[str, Any], config: Descriptor) -> str:
    artifact = doc.get("artifactType")
    if artifact == ARTIFACT_TYPE or config.media_type == CONFIG_MEDIA_TYPE:
        return "modelpack"
    if config.media_type == KITOPS_CONFIG or (
        isinstance(artifact, str) and artifact.startswith(KITOPS_PREFIX)
    ):
        return "kitops"
    return "oras"


def _layer_path(layer: Descriptor, index: int) -> str:
    if _is_archive(layer.media_type):
        raise _refuse(
            f"layer {index} is an archive ({layer.media_type[:100]}); only raw, one-file "
            "layers are loaded (no tar extraction): publish the files as raw layers"
        )
    path = layer.annotations.get(FILEPATH) or layer.annotations.get(TITLE)
    if not path:
        raise _refuse(f"layer {index} has neither {FILEPATH} nor {TITLE}: no file path")
    try:
        return check_relative_path(path)
    except FormatError as exc:
        raise _refuse(f"layer {index}: {exc.message}") from exc


def parse_model_manifest(raw: bytes) -> ModelManifest:
    """The files of a model artifact, or DIGEST_MISMATCH naming what is wrong."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _refuse("not JSON") from exc
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise _refuse("not an OCI image manifest (schemaVersion 2)")
    media = doc.get("mediaType", OCI_MANIFEST)
    if media != OCI_MANIFEST:
        raise _refuse(f"mediaType {str(media)[:100]!r} is not an OCI image manifest")
    code = ReasonCode.DIGEST_MISMATCH
    config = descriptor_from(doc.get("config"), code=code, what="model manifest config")
    layers = doc.get("layers")
    if not isinstance(layers, list) or not layers:
        raise _refuse("no layers")
    if len(layers) > MAX_LAYERS:
        raise _refuse(f"{len(layers)} layers (at most {MAX_LAYERS})")
    flavour = _flavour(doc, config)
    seen: dict[str, int] = {}
    files: list[tuple[str, Descriptor]] = []
    for i, obj in enumerate(layers):
        layer = descriptor_from(obj, code=code, what=f"model manifest layer {i}")
        path = _layer_path(layer, i)
        if path in seen:
            raise _refuse(f"layers {seen[path]} and {i} both claim the path {path!r}")
        seen[path] = i
        files.append((path, layer))
    names = set(seen)
    for path in names:  # a file may not also be a directory of another layer's path
        parent = path.rpartition("/")[0]
        while parent:
            if parent in names:
                raise _refuse(f"{path!r} lies inside the file {parent!r}")
            parent = parent.rpartition("/")[0]
    return ModelManifest(flavour, tuple(sorted(files, key=lambda item: item[0])))
