"""A Registry shared by the tests of one module (starting a process costs ~1 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.registry import RunningRegistry, make_test_env, start_registry


@pytest.fixture(scope="module")
def shared_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    env = make_test_env(tmp_path_factory.mktemp("shared") / "env")
    try:
        with start_registry(env) as running:
            yield running
    finally:
        env.close()
