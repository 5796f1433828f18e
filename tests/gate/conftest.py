"""A real Registry process over real mTLS (H3's fixtures), real signing, and helpers
to publish and govern models through trustload's own client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.registry import DevEnv, RunningRegistry
from trustload.cli.publish import publish_model
from trustload.client.api import RegistryClient
from trustload.config import ClientFileConfig, load_client_config
from trustload.facts import VersionRecord
from trustload.gate import GateResult, run_gate

GIT_SHA = "1" * 40
CONTAINER = "sha256:" + "c" * 64
DATASET = "ds-2026-11"


@dataclass
class World:
    reg: RunningRegistry
    env: DevEnv
    work: Path
    gate_dir: Path | None = None  # per-test cache/state/audit when the Registry is shared

    @property
    def gate_cfg(self) -> ClientFileConfig:
        cfg = load_client_config(self.env.gate_config)
        if self.gate_dir is None:
            return cfg
        gate = cfg.gate.model_copy(
            update={
                "cache_dir": self.gate_dir / "cache",
                "state_dir": self.gate_dir / "state",
                "audit_log": self.gate_dir / "audit.jsonl",
            }
        )
        return cfg.model_copy(update={"gate": gate})

    @property
    def admin_cfg(self) -> ClientFileConfig:
        return load_client_config(self.env.admin_config)

    def admin(self) -> RegistryClient:
        return RegistryClient(self.admin_cfg.registry)

    def model_file(self, name: str = "model.onnx", data: bytes | None = None) -> Path:
        path = self.work / f"m-{os.urandom(4).hex()}" / name
        path.parent.mkdir(parents=True)
        path.write_bytes(data if data is not None else os.urandom(64 * 1024))
        return path

    def publish(
        self, name: str, version: str, path: Path | None = None, **kw: Any
    ) -> VersionRecord:
        return publish_model(
            self.admin_cfg,
            path or self.model_file(),
            name=name,
            version=version,
            key=self.env.signing_key,
            git_sha=kw.pop("git_sha", GIT_SHA),
            container_digest=kw.pop("container_digest", CONTAINER),
            dataset_snapshot=kw.pop("dataset_snapshot", DATASET),
            **kw,
        )

    def release_to_prod(self, name: str, version: str, alias: str = "production") -> None:
        with self.admin() as admin:
            admin.set_stage(name, version, "Approved")
            admin.set_alias(name, alias, version)

    def gate(self, ref: str, cfg: ClientFileConfig | None = None, **kw: Any) -> GateResult:
        return run_gate(cfg or self.gate_cfg, ref, **kw)


@pytest.fixture
def world(running_registry: RunningRegistry, tmp_path: Path) -> Iterator[World]:
    work = tmp_path / "work"
    work.mkdir()
    yield World(running_registry, running_registry.env, work)


@pytest.fixture
def prod(world: World) -> World:
    """``risk@production`` -> version 1, Approved, signed and attested."""
    world.publish("risk", "1")
    world.release_to_prod("risk", "1")
    return world


@pytest.fixture(scope="module")
def shared_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One Registry per module (per xdist worker) with ``risk@production`` -> 1, for
    tests that only read: each test still gets its own gate cache, state and audit."""
    from tests.support.registry import make_test_env, start_registry

    root = tmp_path_factory.mktemp("shared")
    env = make_test_env(root / "env")
    with start_registry(env) as reg:
        work = root / "work"
        work.mkdir()
        world = World(reg, env, work)
        world.publish("risk", "1")
        world.release_to_prod("risk", "1")
        yield world


@pytest.fixture
def ro(shared_registry: World, tmp_path: Path) -> World:
    """The shared Registry seen by a fresh gate (read-only tests)."""
    return World(shared_registry.reg, shared_registry.env, tmp_path, tmp_path / "gate")


def codes(result: GateResult) -> list[str]:
    return [str(c) for c in result.decision.reasons]
