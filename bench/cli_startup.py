"""CLI start-up: a whole ``trustload`` process vs the bare interpreter, same run.

Each command runs as a fresh process (interpreter start-up, imports and the work itself),
``--rounds`` times, interleaved so machine noise hits every command alike; the best and
the median wall time are printed with the ratio to the baseline ``python -c pass`` (the
same interpreter: what no Python CLI can go below). Commands:

* ``verify-image`` of a genuine cosign signature (``cosign sign --key``, with a Rekor SET
  checked offline) in a ``cosign save`` OCI layout from shared/interop/containers-image;
* ``verify-image --help`` and ``trustload --help`` (typer's application).

Usage: ``.venv/bin/python bench/cli_startup.py [--rounds 15] [--interop DIR]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.interop import interop_dir  # noqa: E402

DIGEST = "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a"


def commands(interop: Path) -> dict[str, list[str]]:
    exe = Path(sys.executable).with_name("trustload")
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "trustload"]
    ref = f"oci-layout:{interop / 'layouts' / 'key-rekor-valid'}@{DIGEST}"
    trust = ["--key", str(interop / "trust" / "cosign2.pub")]
    trust += ["--rekor-key", str(interop / "trust" / "rekor.pub")]
    return {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "trustload verify-image <layout>": [*cli, "verify-image", ref, *trust],
        "trustload verify-image --help": [*cli, "verify-image", "--help"],
        "trustload --help": [*cli, "--help"],
    }


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv} exited {done.returncode}:\n{done.stderr.decode()[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument(
        "--interop",
        type=Path,
        default=interop_dir() / "containers-image",
    )
    args = ap.parse_args()
    if not 1 <= args.rounds <= 1000:
        raise SystemExit("--rounds must be 1..1000")
    if not (args.interop / "layouts" / "key-rekor-valid").is_dir():
        raise SystemExit(f"no containers-image vectors at {args.interop}")
    cmds = commands(args.interop)
    for argv in cmds.values():  # warm the page cache and the .pyc files
        wall(argv)
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(args.rounds):
        for name, argv in cmds.items():
            times[name].append(wall(argv))
    base = min(times["python -c pass (baseline)"])
    print(f"{'command':34} {'best ms':>9} {'median ms':>10} {'best / baseline':>16}")
    for name, samples in times.items():
        best = min(samples)
        median = statistics.median(samples)
        print(f"{name:34} {best * 1e3:9.1f} {median * 1e3:10.1f} {best / base:16.1f}")


if __name__ == "__main__":
    main()
