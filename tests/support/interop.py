"""Where the shared interop vectors are: ``$TRUSTLOAD_INTEROP_DIR``, else ``../shared/interop``
beside the checkout (CI, /work/main), else two levels up (a worktree in /work/wt/NAME)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def interop_dir() -> Path:
    """The first candidate holding ``CASES.json``; the first candidate when none does."""
    candidates = [REPO.parent / "shared" / "interop", REPO.parent.parent / "shared" / "interop"]
    env = os.environ.get("TRUSTLOAD_INTEROP_DIR")
    if env:
        candidates.insert(0, Path(env))
    for candidate in candidates:
        if (candidate / "CASES.json").is_file():
            return candidate.resolve()
    return candidates[0]
