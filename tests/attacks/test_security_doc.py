"""docs/security.md is generated from this catalogue; it must never drift from it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_security_doc", ROOT / "scripts" / "gen_security_doc.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_security_doc", module)
    spec.loader.exec_module(module)
    return module


def test_security_doc_matches_the_attack_tests() -> None:
    gen = generator()
    expected = gen.render(gen.collect())
    current = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    assert current == expected, "docs/security.md is stale: run python scripts/gen_security_doc.py"


def test_catalogue_has_at_least_forty_scenarios_each_with_a_code() -> None:
    scenarios = generator().collect()
    assert len(scenarios) >= 40
    assert all(s.codes and s.attack_class and s.description for s in scenarios)
    assert len({s.test for s in scenarios}) == len(scenarios)
