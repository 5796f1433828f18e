"""The runtime's trusted anti-downgrade state, persisted crash-safely (R5).

One JSON file per model and environment under ``state_dir``. It is written with
:func:`trustload.fsutil.atomic_write_bytes` (temp file, fsync, rename, fsync dir), so
a SIGKILL leaves either the old or the new state, never a torn one. A state file that
does not parse is an error, not an empty state: forgetting what we trusted would
re-open the door to a rollback attack.

A writer killed before its rename leaves only an orphan temp file; the next start
(:func:`load_state`) removes those whose writer is gone (:func:`remove_orphan_parts`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from trustload.decision import ReasonCode
from trustload.errors import TrustloadError
from trustload.facts import TrustedState
from trustload.fsutil import atomic_write_bytes, remove_orphan_parts


def _state_path(state_dir: Path, model: str, environment: str) -> Path:
    key = hashlib.sha256(f"{environment}\x00{model}".encode()).hexdigest()[:32]
    return state_dir / f"trusted-{key}.json"


def load_state(state_dir: Path, model: str, environment: str) -> TrustedState | None:
    remove_orphan_parts(state_dir)
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
            alias_revision=None
            if doc.get("alias_revision") is None
            else int(doc["alias_revision"]),
            artifact_digest=str(doc["artifact_digest"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise TrustloadError(
            ReasonCode.DOWNGRADE_BLOCKED, f"trusted state {path} is unreadable: {exc}"
        ) from exc
    if state.model != model or state.environment != environment:
        raise TrustloadError(
            ReasonCode.DOWNGRADE_BLOCKED, f"trusted state {path} is for another model"
        )
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


# --- Healthy-version history and last Registry record (serving runtime, R3 step 7) ---
#
# The runtime may roll back only to a version it served healthily before, and after a
# restart it must still know which ones those were; it may start offline only from a
# Registry record it saw recently (R5 freeze protection). Both live beside the trusted
# state, written the same crash-safe way.

MAX_HISTORY = 16


def _aux_path(state_dir: Path, kind: str, model: str, environment: str) -> Path:
    key = hashlib.sha256(f"{environment}\x00{model}".encode()).hexdigest()[:32]
    return state_dir / f"{kind}-{key}.json"


def _read_json(path: Path) -> object | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc: object = json.loads(raw)
        return doc
    except ValueError as exc:
        raise TrustloadError(
            ReasonCode.DOWNGRADE_BLOCKED, f"state file {path} is unreadable"
        ) from exc


def healthy_versions(state_dir: Path, model: str, environment: str) -> list[dict[str, str]]:
    """Versions served healthily, most recent last: ``[{"version", "artifact_digest"}]``."""
    doc = _read_json(_aux_path(state_dir, "healthy", model, environment))
    if doc is None:
        return []
    if (
        not isinstance(doc, dict)
        or doc.get("model") != model
        or not isinstance(doc.get("versions"), list)
    ):
        raise TrustloadError(ReasonCode.DOWNGRADE_BLOCKED, "healthy-version history is malformed")
    out: list[dict[str, str]] = []
    for item in doc["versions"]:
        if isinstance(item, dict) and isinstance(item.get("version"), str):
            out.append(
                {
                    "version": item["version"],
                    "artifact_digest": str(item.get("artifact_digest", "")),
                }
            )
    return out


def record_healthy(
    state_dir: Path, model: str, environment: str, version: str, digest: str
) -> None:
    """Append (or move to the end) a version that was verified, loaded and served."""
    history = [
        h for h in healthy_versions(state_dir, model, environment) if h["version"] != version
    ]
    history.append({"version": version, "artifact_digest": digest})
    doc = {"model": model, "environment": environment, "versions": history[-MAX_HISTORY:]}
    data = json.dumps(doc, sort_keys=True, indent=2).encode() + b"\n"
    atomic_write_bytes(_aux_path(state_dir, "healthy", model, environment), data, 0o600)


def forget_healthy(state_dir: Path, model: str, environment: str, version: str) -> None:
    """Drop a version (revoked or quarantined) from the rollback candidates."""
    history = healthy_versions(state_dir, model, environment)
    kept = [h for h in history if h["version"] != version]
    if len(kept) != len(history):
        doc = {"model": model, "environment": environment, "versions": kept}
        data = json.dumps(doc, sort_keys=True, indent=2).encode() + b"\n"
        atomic_write_bytes(_aux_path(state_dir, "healthy", model, environment), data, 0o600)


def save_last_record(
    state_dir: Path,
    model: str,
    environment: str,
    ref: str,
    record: dict[str, object],
    fetched_at: str,
) -> None:
    """Keep the last Registry record seen for ``model@ref`` and when it was fetched."""
    doc = {
        "model": model,
        "environment": environment,
        "ref": ref,
        "fetched_at": fetched_at,
        "record": record,
    }
    data = json.dumps(doc, sort_keys=True, default=str).encode() + b"\n"
    atomic_write_bytes(_aux_path(state_dir, "record", model, environment), data, 0o600)


def load_last_record(state_dir: Path, model: str, environment: str) -> dict[str, object] | None:
    doc = _read_json(_aux_path(state_dir, "record", model, environment))
    if doc is None:
        return None
    if (
        not isinstance(doc, dict)
        or doc.get("model") != model
        or not isinstance(doc.get("record"), dict)
    ):
        raise TrustloadError(ReasonCode.DOWNGRADE_BLOCKED, "cached Registry record is malformed")
    return doc
