"""Shared plumbing for the atheris harnesses (see fuzz/README.md).

Each harness defines ``test_one_input(data: bytes) -> None`` that must return normally for
every input: a typed trustload error (a denial) is fine, any other exception is a finding,
and so is a permit on garbage. ``run(test_one_input)`` hands it to libFuzzer via atheris;
without atheris the harness replays the files given on the command line (a corpus
smoke run), which is also what ``tests/fuzz/test_atheris_harnesses.py`` does in CI.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def run(test_one_input: Callable[[bytes], None]) -> None:
    try:
        import atheris
    except ImportError:
        paths = [Path(p) for p in sys.argv[1:]] or []
        for path in paths:
            for item in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if item.is_file():
                    test_one_input(item.read_bytes())
        print(f"atheris not installed: replayed {len(paths)} path(s) without coverage guidance")
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
