"""A real Registry (mTLS, governance) and a real OCI registry (Debian docker-registry,
TLS on loopback) side by side: the Registry governs, the OCI registry serves bytes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.client.pki import CA
from tests.gate.conftest import CONTAINER, DATASET, GIT_SHA, World
from tests.support.ocireg import RunningOciRegistry, oci_ca, ocireg  # noqa: F401
from tests.support.registry import RunningRegistry
from trustload.cli.publish import publish_oci_model
from trustload.config import ClientFileConfig, OciConfig
from trustload.facts import VersionRecord
from trustload.publish_oci import Provenance

REPO = "models/risk"


@dataclass
class OciWorld(World):
    oci: RunningOciRegistry | None = None
    oci_config: OciConfig | None = None  # what the gate is told (default: the registry)

    def _with_oci(self, cfg: ClientFileConfig) -> ClientFileConfig:
        assert self.oci is not None
        return cfg.model_copy(update={"oci": self.oci_config or self.oci.config()})

    @property
    def gate_cfg(self) -> ClientFileConfig:
        return self._with_oci(super().gate_cfg)

    @property
    def admin_cfg(self) -> ClientFileConfig:
        return self._with_oci(super().admin_cfg)

    def model_dir(self, files: dict[str, bytes] | None = None) -> Path:
        root = self.work / f"d-{os.urandom(4).hex()}" / "risk"
        root.mkdir(parents=True)
        for rel, data in (files or default_files()).items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        return root

    def publish_oci(
        self, name: str, version: str, path: Path | None = None, **kw: Any
    ) -> VersionRecord:
        assert self.oci is not None
        return publish_oci_model(
            self.admin_cfg,
            path or self.model_dir(),
            f"{self.oci.host}/{kw.pop('repo', REPO)}",
            name=name,
            version=version,
            key=kw.pop("key", self.env.signing_key),
            provenance=Provenance(
                kw.pop("git_sha", GIT_SHA),
                kw.pop("container_digest", CONTAINER),
                kw.pop("dataset_snapshot", DATASET),
            ),
            **kw,
        )


def default_files() -> dict[str, bytes]:
    return {
        "model.onnx": os.urandom(256 * 1024),
        "config.json": b'{"arch": "tiny"}',
        "README.md": b"# risk\n",
    }


@pytest.fixture
def oworld(
    running_registry: RunningRegistry,
    ocireg: RunningOciRegistry,  # noqa: F811
    tmp_path: Path,
) -> Iterator[OciWorld]:
    work = tmp_path / "work"
    work.mkdir()
    yield OciWorld(running_registry, running_registry.env, work, oci=ocireg)


__all__ = ["CA", "OciWorld", "oci_ca", "ocireg"]


def push_unsigned(world: OciWorld, files: dict[str, bytes] | None = None) -> str:
    """Push a ModelPack artifact with trustload's writer and sign nothing; returns the
    ``oci://`` URI (the caller signs, attests or leaves it bare)."""
    from trustload.oci.reference import RegistryRef, artifact_uri
    from trustload.oci.registry import RegistryRepository
    from trustload.oci.transport import OciTransport
    from trustload.publish_oci import push_model

    assert world.oci is not None
    with OciTransport(world.oci.config()) as t:
        repo = RegistryRepository(t, world.oci.host, REPO)
        digest, _ = push_model(repo, world.model_dir(files), name="risk", version="x", fmt=None)
    return artifact_uri(RegistryRef(world.oci.host, REPO, digest))


def record(world: OciWorld, uri: str, version: str = "1") -> VersionRecord:
    """``publish oci://...`` (import) and release to production."""
    from trustload.publish_oci import import_from_oci

    rec = import_from_oci(
        world.admin_cfg,
        uri,
        name="risk",
        version=version,
        provenance=Provenance(GIT_SHA, CONTAINER, DATASET),
        policy_digest=_policy(world),
        card=None,
    )
    world.release_to_prod("risk", version)
    return rec


def _policy(world: OciWorld) -> str:
    from trustload.policy import policy_digest

    return policy_digest(world.admin_cfg.gate.policy_dir)


def layer_data_path(reg: RunningOciRegistry, digest: str) -> Path:
    """Where docker-registry's filesystem driver keeps a blob's bytes."""
    hexpart = digest.removeprefix("sha256:")
    return reg.root / "storage" / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"


@pytest.fixture
def oworld_basic(
    running_registry: RunningRegistry,
    tmp_path: Path,
    oci_ca: CA,  # noqa: F811
) -> Iterator[OciWorld]:
    """The same, with the OCI registry behind htpasswd Basic authentication."""
    from tests.support.ocireg import oci_registry

    work = tmp_path / "work"
    work.mkdir()
    with oci_registry(tmp_path / "reg-basic", oci_ca, auth="basic", name="basic") as reg:
        yield OciWorld(running_registry, running_registry.env, work, oci=reg)
