"""Run the real start-up gate in a child process and SIGKILL it at a chosen instant.

``python -m tests.faults.crashgate GATE_TOML REF CACHE_DIR STATE_DIR MODE``

MODE picks the instant, by wrapping the OS calls the gate makes there (the gate's own
code runs unmodified up to that point; SIGKILL leaves no chance to clean up):

* ``cache-write``: after the first chunk of a blob download reached the partial file;
* ``cache-rename``: when the verified partial is about to be renamed to its final name;
* ``state-fsync``: when the new trusted state's temp file is written and about to be fsync'd;
* ``state-rename``: when that temp file is about to replace the trusted state.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _fd_name(fd: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return ""


def arm(mode: str) -> None:
    import trustload.cache as cache

    if mode == "cache-write":
        original = cache._write_all

        def write_then_die(fd: int, data: bytes | memoryview) -> None:
            original(fd, data)
            os.fsync(fd)
            _die()

        cache._write_all = write_then_die  # type: ignore[assignment]
        return
    real_replace, real_fsync = os.replace, os.fsync

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        name = os.path.basename(os.fspath(dst))
        if (mode == "cache-rename" and len(name) == 64) or (
            mode == "state-rename" and name.startswith("trusted-")
        ):
            _die()
        real_replace(src, dst)

    def fsync(fd: int) -> None:
        if mode == "state-fsync" and _fd_name(fd).startswith(".trusted-"):
            _die()
        real_fsync(fd)

    os.replace = replace  # type: ignore[assignment]
    os.fsync = fsync  # type: ignore[assignment]


def main() -> None:
    gate_toml, ref, cache_dir, state_dir, mode = sys.argv[1:6]
    from trustload.config import load_client_config
    from trustload.gate import run_gate

    cfg = load_client_config(gate_toml)
    cfg = cfg.model_copy(
        update={
            "gate": cfg.gate.model_copy(
                update={"cache_dir": Path(cache_dir), "state_dir": Path(state_dir)}
            )
        }
    )
    arm(mode)
    result = run_gate(cfg, ref, record_audit=False)
    print("permit" if result.decision.permitted else "deny")  # reached only if never killed


if __name__ == "__main__":
    main()
