"""The atheris harnesses in fuzz/ stay runnable: each is imported without atheris and its
``test_one_input`` replays a handful of seeds (genuine and hostile)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import FUZZ

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
HARNESSES = sorted(p.stem for p in FUZZ_DIR.glob("fuzz_*.py"))
SEEDS = [
    b"",
    b"{}",
    b"[]",
    b"\xff\xfe",
    b"{" * 5000,
    json.dumps(
        {
            "payload": "e30=",
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": "AA=="}],
        }
    ).encode(),
    json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {},
        }
    ).encode(),
    b'package x\n\x00{"a": {"a": 1}, "a": 2}',
]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}", FUZZ_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_there_is_one_harness_per_parser() -> None:
    assert HARNESSES == [
        "fuzz_bundle",
        "fuzz_dsse",
        "fuzz_intoto",
        "fuzz_policy_bundle",
        "fuzz_record",
        "fuzz_slsa",
    ]


@pytest.mark.parametrize("name", HARNESSES)
def test_harness_replays_seeds(name: str) -> None:
    harness = load(name)
    for seed in SEEDS:
        harness.test_one_input(seed)


@FUZZ
@given(data=st.binary(max_size=600))
def test_harnesses_on_random_bytes(data: bytes) -> None:
    for name in HARNESSES:
        load_cached(name).test_one_input(data)


_CACHE: dict[str, ModuleType] = {}


def load_cached(name: str) -> ModuleType:
    if name not in _CACHE:
        _CACHE[name] = load(name)
    return _CACHE[name]
