"""Publishing models as OCI artifacts (``publish PATH --oci HOST/REPO``) and recording
artifacts others pushed (``publish oci://HOST/REPO@sha256:...``).

Push: every file is one raw ModelPack layer, uploaded in parallel and hashed once as it
is read (:meth:`RegistryRepository.push_file`: the digest the registry checks on the
final PUT is the one computed from the bytes sent, so no file is read twice); then the
ModelPack config and manifest. The manifest digest is then signed cosign-style
(``sha256-<hex>.sig``) and attested with SLSA v1 provenance (``sha256-<hex>.att``), both
by :mod:`trustload.oci.cosign_sign`, and the version is recorded in the Registry with
``artifact_uri`` (no model byte goes to the Registry).

Import: the manifest is fetched by digest (hashed) and parsed with the gate's own reader
(:func:`trustload.oci.modelpack.parse_model_manifest`), so a layout the gate would
refuse is refused at publish time too; nothing is signed, the artifact's own cosign
signature and attestation are what the gate verifies on every load.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustload.errors import UsageError

if TYPE_CHECKING:
    from trustload.config import ClientFileConfig
    from trustload.facts import VersionRecord
    from trustload.oci.modelpack import ModelManifest
    from trustload.oci.reader import Descriptor
    from trustload.oci.reference import RegistryRef
    from trustload.oci.registry import RegistryRepository

PARALLEL_UPLOADS = 4
_TAG_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


@dataclass(frozen=True)
class Provenance:
    """What the attestation states and the Registry records (R2.6)."""

    git_sha: str
    container_digest: str
    dataset_snapshot: str


def parse_target(text: str) -> tuple[str, str]:
    """``--oci HOST[:PORT]/REPO`` -> (host, repository); no tag, no digest."""
    from trustload.oci.reference import parse_reference

    host, sep, repo = text.partition("/")
    if not sep or "@" in text or ":" in repo:
        raise UsageError(f"--oci {text!r}: expected HOST[:PORT]/REPO (no tag or digest)")
    parse_reference(f"{host}/{repo}@sha256:{'0' * 64}")  # the same host/repo grammar
    return host, repo


def push_files(repo: RegistryRepository, root: list[tuple[str, Path]]) -> list[Descriptor]:
    """Upload every file as a raw layer of its role, in parallel; each read once."""
    from trustload.oci.modelpack import FILEPATH, layer_media_type
    from trustload.oci.reader import Descriptor

    def one(item: tuple[str, Path]) -> Descriptor:
        rel, where = item
        pushed = repo.push_file(where, layer_media_type(rel))
        return Descriptor(pushed.media_type, pushed.digest, pushed.size, {FILEPATH: rel})

    workers = max(1, min(PARALLEL_UPLOADS, len(root)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="oci-push") as pool:
        return list(pool.map(one, root))


def push_model(
    repo: RegistryRepository, path: Path, *, name: str, version: str, fmt: str | None
) -> tuple[str, ModelManifest]:
    """Push ``path`` (file or directory) as a ModelPack artifact; returns the manifest
    digest and the parsed manifest (the gate's own view of what was pushed)."""
    from trustload.digests import ModelLayout
    from trustload.oci.modelpack import (
        CONFIG_MEDIA_TYPE,
        config_bytes,
        manifest_bytes,
        parse_model_manifest,
    )
    from trustload.oci.registry import OCI_MANIFEST

    layout = ModelLayout.from_path(path)
    layers = push_files(repo, list(layout.files))
    config = repo.push_bytes(config_bytes(name, version, fmt, layers), CONFIG_MEDIA_TYPE)
    raw = manifest_bytes(config, layers)
    tag = version if version[:1].isalnum() and set(version) <= set(_TAG_OK) else None
    digest = repo.push_manifest(raw, OCI_MANIFEST, tag or "sha256:" + _sha256(raw))
    return digest, parse_model_manifest(raw)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def record_request(
    ref: RegistryRef,
    parsed: ModelManifest,
    *,
    version: str,
    fmt: str | None,
    policy_digest: str,
    provenance: Provenance,
    card: dict[str, Any],
) -> dict[str, Any]:
    """The Registry publish request of an OCI version (docs/registry-api.md)."""
    from trustload.oci.reference import artifact_uri

    return {
        "version": version,
        "artifact_digest": ref.digest,
        "artifact_size": parsed.size,
        "kind": "directory",
        "format": card.get("format") or fmt,
        "files": [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in parsed.entries()],
        "policy_digest": policy_digest,
        "git_sha": provenance.git_sha,
        "container_digest": provenance.container_digest,
        "dataset_snapshot": provenance.dataset_snapshot,
        "artifact_uri": artifact_uri(ref),
        "card": card,
    }


@dataclass(frozen=True)
class Signing:
    key: Path
    password: bytes | None
    not_after: datetime | None


def publish_to_oci(
    cfg: ClientFileConfig,
    path: Path,
    target: str,
    *,
    name: str,
    version: str,
    signing: Signing,
    provenance: Provenance,
    policy_digest: str,
    card: dict[str, Any],
    fmt: str | None,
) -> VersionRecord:
    """Push, sign, attest, record (see module docstring)."""
    from trustload.client.api import RegistryClient
    from trustload.oci.cosign_sign import attest_image, sign_image
    from trustload.oci.reference import RegistryRef
    from trustload.oci.registry import RegistryRepository
    from trustload.oci.transport import OciTransport

    host, repository = parse_target(target)
    with OciTransport(cfg.oci) as transport:
        repo = RegistryRepository(transport, host, repository)
        digest, parsed = push_model(repo, path, name=name, version=version, fmt=fmt)
        ref = RegistryRef(host, repository, digest)
        sign_image(repo, ref, signing.key, signing.password)
        attest_image(
            repo,
            ref,
            signing.key,
            git_sha=provenance.git_sha,
            container_digest=provenance.container_digest,
            dataset_snapshot=provenance.dataset_snapshot,
            password=signing.password,
            not_after=signing.not_after,
        )
    request = record_request(
        ref,
        parsed,
        version=version,
        fmt=fmt,
        policy_digest=policy_digest,
        provenance=provenance,
        card=card,
    )
    with RegistryClient(cfg.registry) as client:
        return client.publish(name, request)


def import_from_oci(
    cfg: ClientFileConfig,
    uri: str,
    *,
    name: str,
    version: str,
    provenance: Provenance,
    policy_digest: str,
    card: dict[str, Any] | None,
) -> VersionRecord:
    """Record an artifact already in an OCI registry (pushed and signed elsewhere)."""
    from trustload.cli.publish import resolve_card
    from trustload.client.api import RegistryClient
    from trustload.oci.modelpack import parse_model_manifest
    from trustload.oci.reference import parse_artifact_uri
    from trustload.oci.registry import RegistryRepository
    from trustload.oci.transport import OciTransport

    ref = parse_artifact_uri(uri)
    with OciTransport(cfg.oci) as transport:
        repo = RegistryRepository(transport, ref.host, ref.repository)
        manifest = repo.manifest(ref.digest)  # hashed to the pinned digest
    parsed = parse_model_manifest(manifest.raw)  # the gate's own rules, refused now
    with RegistryClient(cfg.registry) as client:
        request = record_request(
            ref,
            parsed,
            version=version,
            fmt=None,
            policy_digest=policy_digest,
            provenance=provenance,
            card=resolve_card(card, client, None),
        )
        return client.publish(name, request)
