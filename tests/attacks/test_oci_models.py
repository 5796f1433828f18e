"""Models stored as OCI artifacts (issue 10): the Registry governs, a real docker-registry
serves the bytes, and every hostile artifact, registry or record is refused with its code.

Artifacts are written layer by layer here (so that hostile manifests can be made), signed
and attested cosign-style with the arena's key, and recorded through the Registry API
with ``artifact_uri``. The gate lists the OCI registry in ``[[oci.registries]]``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.helpers import (
    CONTAINER,
    DATASET,
    GIT_SHA,
    REVALIDATE_BY,
    Arena,
    Gate,
    assert_denied,
    card,
)
from tests.client.pki import CA
from tests.support.ocireg import RunningOciRegistry, oci_registry
from trustload.config import ClientFileConfig, OciConfig
from trustload.decision import ReasonCode
from trustload.oci.cosign_sign import attest_image, sign_image
from trustload.oci.modelpack import ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, FILEPATH, WEIGHT
from trustload.oci.reader import Descriptor
from trustload.oci.reference import RegistryRef, artifact_uri
from trustload.oci.registry import OCI_MANIFEST, RegistryRepository
from trustload.oci.transport import OciTransport

REPO = "models/arena"


@pytest.fixture(scope="module")
def ocireg_mod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOciRegistry]:
    root = tmp_path_factory.mktemp("oci")
    with oci_registry(root / "reg", CA(root / "pki", "oci-arena-ca")) as reg:
        yield reg


@dataclass
class Pushed:
    ref: RegistryRef
    layers: list[Descriptor]  # as pushed (annotations included)

    @property
    def uri(self) -> str:
        return artifact_uri(self.ref)


@dataclass
class Oci:
    arena: Arena
    reg: RunningOciRegistry

    def repo(self, t: OciTransport) -> RegistryRepository:
        return RegistryRepository(t, self.reg.host, REPO)

    def push(
        self, files: dict[str, bytes], *, media: str = WEIGHT, paths: dict[str, str] | None = None
    ) -> Pushed:
        """One raw layer per file; ``paths`` overrides the annotated path (hostile)."""
        with OciTransport(self.reg.config()) as t:
            repo = self.repo(t)
            layers = []
            for rel, data in sorted(files.items()):
                d = repo.push_bytes(data, media)
                layers.append(
                    Descriptor(media, d.digest, d.size, {FILEPATH: (paths or {}).get(rel, rel)})
                )
            config = repo.push_bytes(b'{"modelfs":{"type":"layers"}}', CONFIG_MEDIA_TYPE)
            doc = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": ARTIFACT_TYPE,
                "config": {"mediaType": config.media_type, "digest": config.digest,
                           "size": config.size},
                "layers": [
                    {"mediaType": x.media_type, "digest": x.digest, "size": x.size,
                     "annotations": x.annotations}
                    for x in layers
                ],
            }  # fmt: skip
            raw = json.dumps(doc).encode()
            digest = repo.push_manifest(raw, OCI_MANIFEST, f"t{os.urandom(4).hex()}")
        return Pushed(RegistryRef(self.reg.host, REPO, digest), layers)

    def sign(self, pushed: Pushed, *, key: Path | None = None) -> None:
        with OciTransport(self.reg.config()) as t:
            repo = self.repo(t)
            sign_image(repo, pushed.ref, key or self.arena.env.signing_key)
            attest_image(
                repo,
                pushed.ref,
                self.arena.env.signing_key,
                git_sha=GIT_SHA,
                container_digest=CONTAINER,
                dataset_snapshot=DATASET,
                not_after=REVALIDATE_BY,
            )

    def record(self, pushed: Pushed, files: list[dict[str, Any]] | None = None) -> str:
        """Record the artifact (files: what the record claims, default the layers)."""
        name = self.arena.name("oci")
        listed = files or [
            {"path": x.annotations[FILEPATH], "sha256": x.digest.removeprefix("sha256:"),
             "size": x.size}
            for x in pushed.layers
        ]  # fmt: skip
        admin = self.arena.admin()
        admin.publish(
            name,
            {
                "version": "1",
                "artifact_digest": pushed.ref.digest,
                "artifact_size": sum(int(f["size"]) for f in listed),
                "kind": "directory",
                "format": "onnx",
                "files": listed,
                "policy_digest": self.arena.policy_digest,
                "git_sha": GIT_SHA,
                "container_digest": CONTAINER,
                "dataset_snapshot": DATASET,
                "artifact_uri": pushed.uri,
                "card": card(),
            },
        )
        admin.set_stage(name, "1", "Approved")
        admin.set_alias(name, "production", "1")
        return f"{name}@production"

    def cfg(self, gate: Gate, oci: OciConfig | None = None) -> ClientFileConfig:
        return gate.cfg.model_copy(update={"oci": oci or self.reg.config()})

    def good(self, files: dict[str, bytes] | None = None) -> tuple[Pushed, str]:
        pushed = self.push(files or {"model.onnx": os.urandom(64 * 1024), "config.json": b"{}"})
        self.sign(pushed)
        return pushed, self.record(pushed)


@pytest.fixture
def oci(arena: Arena, ocireg_mod: RunningOciRegistry) -> Oci:
    return Oci(arena, ocireg_mod)


def _blob_file(reg: RunningOciRegistry, digest: str) -> Path:
    hexpart = digest.removeprefix("sha256:")
    return reg.root / "storage/docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"


def test_oci_honest_artifact_permits(oci: Oci, gate: Gate) -> None:
    _pushed, ref = oci.good()
    result = gate.run(ref, oci.cfg(gate))
    assert result.decision.permitted, result.decision.to_json()


def test_oci_tampered_layer_in_storage(oci: Oci, gate: Gate) -> None:
    """A layer's bytes are changed in the OCI registry's storage (same size).

    Attack: oci / tampered layer in the OCI registry
    """
    pushed, ref = oci.good()
    data = _blob_file(oci.reg, pushed.layers[-1].digest)
    raw = bytearray(data.read_bytes())
    raw[7] ^= 0x01
    data.write_bytes(bytes(raw))
    assert_denied(
        gate.run(ref, oci.cfg(gate)), ReasonCode.DIGEST_MISMATCH, cache_dir=gate.cache_dir
    )


def test_oci_tampered_manifest_in_storage(oci: Oci, gate: Gate) -> None:
    """The manifest the record pins is rewritten in the registry's storage (one more layer).

    Attack: oci / swapped manifest
    """
    pushed, ref = oci.good()
    data = _blob_file(oci.reg, pushed.ref.digest)
    doc = json.loads(data.read_bytes())
    doc["layers"].append(dict(doc["layers"][0], annotations={FILEPATH: "extra.bin"}))
    data.write_bytes(json.dumps(doc).encode())
    assert_denied(
        gate.run(ref, oci.cfg(gate)), ReasonCode.DIGEST_MISMATCH, cache_dir=gate.cache_dir
    )


def test_oci_layer_path_traversal(oci: Oci, gate: Gate) -> None:
    """An artifact, signed by a trusted key, whose layer is annotated ``../../x`` while
    the record lists a harmless name for it.

    Attack: oci / path traversal in a layer annotation
    """
    pushed = oci.push({"x": b"payload"}, paths={"x": "../../etc/cron.d/x"})
    oci.sign(pushed)
    listed = [{"path": "x", "sha256": pushed.layers[0].digest[7:], "size": 7}]
    ref = oci.record(pushed, files=listed)
    assert_denied(
        gate.run(ref, oci.cfg(gate)), ReasonCode.DIGEST_MISMATCH, cache_dir=gate.cache_dir
    )


def test_oci_record_lists_other_files(oci: Oci, gate: Gate) -> None:
    """The record claims a file list the manifest does not have (another digest).

    Attack: oci / record and manifest disagree
    """
    pushed = oci.push({"model.onnx": b"real weights"})
    oci.sign(pushed)
    fake = hashlib.sha256(b"other weights").hexdigest()
    ref = oci.record(pushed, files=[{"path": "model.onnx", "sha256": fake, "size": 12}])
    assert_denied(
        gate.run(ref, oci.cfg(gate)), ReasonCode.DIGEST_MISMATCH, cache_dir=gate.cache_dir
    )


def test_oci_signature_of_another_artifact(oci: Oci, gate: Gate) -> None:
    """Artifact B carries, under its ``.sig`` tag, artifact A's valid cosign signature.

    Attack: oci / signature replay from another artifact
    """
    a, _ = oci.good()
    b = oci.push({"model.onnx": os.urandom(4096)})
    with OciTransport(oci.reg.config()) as t:
        repo = oci.repo(t)
        stolen = repo.tagged_manifest(a.ref.digest.replace(":", "-", 1) + ".sig")
        assert stolen is not None
        repo.push_manifest(stolen.raw, OCI_MANIFEST, b.ref.digest.replace(":", "-", 1) + ".sig")
        attest_image(
            repo, b.ref, oci.arena.env.signing_key, git_sha=GIT_SHA,
            container_digest=CONTAINER, dataset_snapshot=DATASET, not_after=REVALIDATE_BY,
        )  # fmt: skip
    ref = oci.record(b)
    assert_denied(
        gate.run(ref, oci.cfg(gate)), ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir
    )


def test_oci_unsigned_artifact(oci: Oci, gate: Gate) -> None:
    """An artifact pushed with no cosign signature and no attestation at all.

    Attack: oci / unsigned artifact
    """
    ref = oci.record(oci.push({"model.onnx": os.urandom(2048)}))
    assert_denied(
        gate.run(ref, oci.cfg(gate)),
        ReasonCode.SIGNATURE_MISSING,
        ReasonCode.ATTESTATION_MISSING,
        cache_dir=gate.cache_dir,
    )


def test_oci_kitops_archive_layer(oci: Oci, gate: Gate) -> None:
    """A signed KitOps-style artifact whose layer is a gzipped tar (never unpacked).

    Attack: oci / archive layer
    """
    pushed = oci.push(
        {"model.onnx": os.urandom(1024)}, media="application/vnd.kitops.modelkit.model.v1.tar+gzip"
    )
    oci.sign(pushed)
    assert_denied(
        gate.run(oci.record(pushed), oci.cfg(gate)),
        ReasonCode.DIGEST_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_oci_model_host_not_allowlisted(oci: Oci, gate: Gate) -> None:
    """The record points at an OCI registry the gate does not list.

    Attack: oci / unlisted OCI registry
    """
    _pushed, ref = oci.good()
    assert_denied(
        gate.run(ref, oci.cfg(gate, OciConfig())),
        ReasonCode.REGISTRY_NOT_ALLOWED,
        cache_dir=gate.cache_dir,
    )


def test_oci_model_larger_than_allowed(oci: Oci, gate: Gate) -> None:
    """A model whose layers add up to more than ``registry.max_download_bytes``.

    Attack: oci / oversized artifact
    """
    _pushed, ref = oci.good({"model.onnx": os.urandom(100_000)})
    cfg = oci.cfg(gate)
    cfg = cfg.model_copy(
        update={"registry": cfg.registry.model_copy(update={"max_download_bytes": 50_000})}
    )
    assert_denied(gate.run(ref, cfg), ReasonCode.REGISTRY_UNAVAILABLE, cache_dir=gate.cache_dir)


def test_oci_revoked_digest_under_a_new_name(oci: Oci, gate: Gate) -> None:
    """A revoked OCI version's manifest digest is published again under another name.

    Attack: oci / revoked artifact re-published
    """
    from trustload.errors import TrustloadError

    pushed, ref = oci.good()
    name = ref.partition("@")[0]
    oci.arena.admin().revoke(name, "1", "leaked weights")
    assert_denied(gate.run(ref, oci.cfg(gate)), ReasonCode.REVOKED, cache_dir=gate.cache_dir)
    with pytest.raises(TrustloadError):
        oci.record(pushed)
