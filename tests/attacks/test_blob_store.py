"""Attacks on the Registry's blob store when it is an OCI registry
(``[server] blob_store = "oci://HOST/REPO"``): whoever can write that registry's storage
(a compromised storage bucket, a registry operator) changes model bytes under the
Registry. The Registry serves what is stored, as with its filesystem store; the gate
hashes every byte it admits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.attacks.helpers import Arena, Gate, assert_denied
from tests.client.pki import CA
from tests.support.ocireg import RunningOciRegistry, oci_registry
from tests.support.registry import make_test_env, start_registry
from tests.support.replicas import use_oci_blob_store
from trustload.decision import ReasonCode
from trustload.policy import policy_digest


@pytest.fixture(scope="module")
def oci_arena(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Arena, RunningOciRegistry]]:
    root = tmp_path_factory.mktemp("oci-arena")
    with oci_registry(root / "oci", CA(root / "oci-pki", "oci-test-ca")) as oci:
        env = make_test_env(root / "env")
        try:
            use_oci_blob_store(env, oci, "trustload/blobs")
            with start_registry(env) as reg:
                a = Arena(reg, env, root / "work", policy_digest(env.policy_dir))
                try:
                    yield a, oci
                finally:
                    if a._admin is not None:
                        a._admin.close()
        finally:
            env.close()


def _stored(oci: RunningOciRegistry, digest: str) -> Path:
    hexdigest = digest.removeprefix("sha256:")
    root = oci.root / "storage/docker/registry/v2/blobs/sha256"
    return root / hexdigest[:2] / hexdigest / "data"


def test_blob_store_model_bytes_swapped_in_oci_storage(
    oci_arena: tuple[Arena, RunningOciRegistry], tmp_path: Path
) -> None:
    """Model bytes are rewritten in place in the OCI registry's storage backing the
    Registry (same size, same digest path), after publish and approval.

    Attack: blob store / storage tampered
    """
    arena, oci = oci_arena
    name = arena.good()
    with arena.admin() as admin:
        digest = admin.resolve(name, "production").artifact_digest
    blob = _stored(oci, digest)
    raw = bytearray(blob.read_bytes())
    raw[0] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(raw))
    gate = Gate(arena, tmp_path / "gate")
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.DIGEST_MISMATCH, cache_dir=gate.cache_dir
    )


def test_blob_store_model_blob_deleted_from_oci_storage(
    oci_arena: tuple[Arena, RunningOciRegistry], tmp_path: Path
) -> None:
    """The approved model's blob is deleted from the OCI registry's storage (the
    Registry's record still names it): the gate is refused, as for a blob missing from
    the filesystem store, and nothing else is admitted in its place.

    Attack: blob store / blob withdrawn
    """
    arena, oci = oci_arena
    name = arena.good()
    with arena.admin() as admin:
        digest = admin.resolve(name, "production").artifact_digest
    _stored(oci, digest).unlink()
    gate = Gate(arena, tmp_path / "gate")
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.NOT_FOUND, cache_dir=gate.cache_dir
    )
