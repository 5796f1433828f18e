"""Run the real start-up gate in a child process and SIGKILL it at a chosen instant.

``python -m tests.faults.crashgate GATE_TOML REF CACHE_DIR STATE_DIR MODE``

MODE picks the instant, by wrapping the OS calls the gate makes there (the gate's own
code runs unmodified up to that point; SIGKILL leaves no chance to clean up):

* ``cache-write``: after the first chunk of a blob download reached the partial file;
* ``cache-rename``: when the verified partial is about to be renamed to its final name;
* ``state-fsync``: when the new trusted state's temp file is written and about to be fsync'd;
* ``state-rename``: when that temp file is about to replace the trusted state;
* ``audit-write``: half-way through writing the decision's line to the audit log (the
  optional 6th argument names the log; the line is left torn, without its newline);
* ``none``: no crash, the gate runs to the end.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.attacks.helpers import Gate

from tests.support.crash import (
    base_name,
    die,
    die_after_first_cache_write,
    die_around,
    fd_name,
)


class _TearingFile:
    """The audit log's file object, writing only half of the next line before dying."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, data: bytes) -> int:
        self._inner.write(data[: len(data) // 2])
        self._inner.flush()
        os.fsync(self._inner.fileno())
        die()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _TearingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()


def arm(mode: str) -> None:
    if mode == "audit-write":
        real_fdopen = os.fdopen

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            inner = real_fdopen(fd, *args, **kwargs)
            return _TearingFile(inner) if fd_name(fd).endswith(".jsonl") else inner

        os.fdopen = fdopen  # type: ignore[assignment]
    elif mode == "cache-write":
        die_after_first_cache_write()
    elif mode == "cache-rename":
        die_around("replace", before=lambda _src, dst, *_: len(base_name(dst)) == 64)
    elif mode == "state-rename":
        die_around("replace", before=lambda _src, dst, *_: base_name(dst).startswith("trusted-"))
    elif mode == "state-fsync":
        die_around("fsync", before=lambda fd: fd_name(fd).startswith(".trusted-"))
    elif mode != "none":  # none: run the gate to the end (a plain concurrent run)
        raise SystemExit(f"unknown mode {mode}")


def command(
    gate: Gate, ref: str, mode: str, *, state: str = "state", audit_log: Path | None = None
) -> list[str]:
    """The argv that runs this module against ``gate``'s config and cache (cwd: the repo)."""
    argv = [
        sys.executable, "-m", "tests.faults.crashgate", str(gate.arena.env.gate_config), ref,
        str(gate.cache_dir), str(gate.root / state), mode,
    ]  # fmt: skip
    return argv if audit_log is None else [*argv, str(audit_log)]


def main() -> None:
    gate_toml, ref, cache_dir, state_dir, mode = sys.argv[1:6]
    audit_log = sys.argv[6] if len(sys.argv) > 6 else None
    from trustload.config import load_client_config
    from trustload.gate import run_gate

    cfg = load_client_config(gate_toml)
    cfg = cfg.model_copy(
        update={
            "gate": cfg.gate.model_copy(
                update={"cache_dir": Path(cache_dir), "state_dir": Path(state_dir)}
                | ({"audit_log": Path(audit_log)} if audit_log else {})
            )
        }
    )
    arm(mode)
    result = run_gate(cfg, ref, record_audit=audit_log is not None)
    print("permit" if result.decision.permitted else "deny")  # reached only if never killed


if __name__ == "__main__":
    main()
