"""One real Registry process per attack module (module scope keeps the catalogue fast);
each test gets its own model names and its own gate cache, state and audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.attacks.helpers import Arena, Gate
from tests.support.registry import make_test_env, start_registry
from trustload.policy import policy_digest


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    root = tmp_path_factory.mktemp("arena")
    env = make_test_env(root / "env")
    with start_registry(env) as reg:
        a = Arena(reg=reg, env=env, root=root / "work", policy_digest=policy_digest(env.policy_dir))
        try:
            yield a
        finally:
            if a._admin is not None:
                a._admin.close()


@pytest.fixture
def gate(arena: Arena, tmp_path: Path) -> Gate:
    (tmp_path / "gate").mkdir()
    return Gate(arena, tmp_path / "gate")
