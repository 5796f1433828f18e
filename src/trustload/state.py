"""The runtime's trusted anti-downgrade state, persisted crash-safely (R5).

One JSON file per model and environment under ``state_dir``. It is written with
:func:`trustload.fsutil.atomic_write_bytes` (temp file, fsync, rename, fsync dir), so
a SIGKILL leaves either the old or the new state, never a torn one. A state file that
does not parse is an error, not an empty state: forgetting what we trusted would
re-open the door to a rollback attack.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from trustload.decision import ReasonCode
from trustload.errors import TrustloadError
from trustload.facts import TrustedState
from trustload.fsutil import atomic_write_bytes


def _state_path(state_dir: Path, model: str, environment: str) -> Path:
    key = hashlib.sha256(f"{environment}\x00{model}".encode()).hexdigest()[:32]
    return state_dir / f"trusted-{key}.json"


def load_state(state_dir: Path, model: str, environment: str) -> TrustedState | None:
    path = _state_path(state_dir, model, environment)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        state = TrustedState(
            model=str(doc["model"]),
            environment=str(doc["environment"]),
            version=str(doc["version"]),
            alias=None if doc.get("alias") is None else str(doc["alias"]),
            alias_revision=None if doc.get("alias_revision") is None else int(doc["alias_revision"]),
            artifact_digest=str(doc["artifact_digest"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise TrustloadError(
            ReasonCode.DOWNGRADE_BLOCKED, f"trusted state {path} is unreadable: {exc}"
        ) from exc
    if state.model != model or state.environment != environment:
        raise TrustloadError(ReasonCode.DOWNGRADE_BLOCKED, f"trusted state {path} is for another model")
    return state


def save_state(state_dir: Path, state: TrustedState) -> None:
    doc = {
        "model": state.model,
        "environment": state.environment,
        "version": state.version,
        "alias": state.alias,
        "alias_revision": state.alias_revision,
        "artifact_digest": state.artifact_digest,
    }
    data = json.dumps(doc, sort_keys=True, indent=2).encode() + b"\n"
    atomic_write_bytes(_state_path(state_dir, state.model, state.environment), data, 0o600)
