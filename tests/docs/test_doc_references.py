"""Docs cite tests and modules by name (the R10 control mapping, the runbooks): a
renamed or deleted test must not leave a control mapped to nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
CITE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")
CONTINUED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`((?:, `::\w+`)+)")


def _citations(text: str) -> set[tuple[str, str | None]]:
    found: set[tuple[str, str | None]] = set(CITE.findall(text))
    for path, first, rest in CONTINUED.findall(text):  # "`a.py::x`, `::y`" shorthand
        found.add((path, first))
        found.update((path, name) for name in re.findall(r"`::(\w+)`", rest))
    return {(p, n or None) for p, n in found}


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_cited_tests_exist(doc: Path) -> None:
    missing = []
    for rel, name in sorted(_citations(doc.read_text()), key=str):
        target = ROOT / rel
        if not target.is_file():
            missing.append(rel)
        elif name is not None and name not in _functions(target):
            missing.append(f"{rel}::{name}")
    assert not missing, f"{doc.name} cites tests that do not exist: {missing}"


def test_the_control_mapping_cites_tests() -> None:
    assert len(_citations((ROOT / "docs" / "controls.md").read_text())) >= 20
