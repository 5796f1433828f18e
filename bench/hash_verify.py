"""Verification speed: trustload vs ``openssl dgst -sha256`` and vs ``model-signing``.

Creates (under a temporary directory, removed at exit) a 1 GiB single-file model and a
4 x 256 MiB directory model, signs both with ``trustload sign`` (key mode, files mode:
one whole-file SHA-256 per file, which a cold gate computes while downloading), signs
the single file once more with ``--shard-size 64 MiB`` (model-signing's shard mode, the
opt-in whose warm re-verification hashes shards on every core), warms the page cache,
then measures against the same bytes, in the same run, best of ``--repeat`` (default 3):

* ``trustload verify-files`` wall time (a fresh process, start-up included) divided by
  ``openssl dgst -sha256`` wall time over the same file(s): target <= 0.65 on 2 cores;
* trustload's verify time divided by the ``model-signing`` library's verify time on the
  same signed model: target <= 1.0. Both are measured as a fresh process (interpreter
  start-up and imports included) and in-process (the Python APIs alone).

Usage: ``.venv/bin/python bench/hash_verify.py [--size-mib 1024] [--repeat 3] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARD_SIZE = 64 * 1024 * 1024  # the shard-mode row: 16 shards of a 1 GiB file
PY = sys.executable
CHUNK = 16 * 1024 * 1024


def trustload_cmd() -> list[str]:
    exe = Path(PY).with_name("trustload")
    return [str(exe)] if exe.exists() else [PY, "-m", "trustload.cli.main"]


def write_random(path: Path, size: int) -> None:
    """Pseudo-random bytes, fast: one random block, each copy tweaked by a counter."""
    block = bytearray(os.urandom(CHUNK))
    with path.open("wb") as fh:
        written = 0
        counter = 0
        while written < size:
            counter += 1
            block[:8] = counter.to_bytes(8, "little")
            n = min(CHUNK, size - written)
            fh.write(block[:n])
            written += n


def best(fn: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


# Like an installed package: byte-code is cached (this sandbox sets
# PYTHONDONTWRITEBYTECODE, which would recompile every module on every start).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(cmd: list[str], expect: int = 0) -> None:
    out = subprocess.run(cmd, capture_output=True, env=ENV)
    if out.returncode != expect:
        raise SystemExit(
            f"command failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr.decode()[-2000:]}"
        )


def warm(paths: list[Path]) -> None:
    for p in paths:
        with p.open("rb") as fh:
            while fh.read(CHUNK):
                pass


MS_VERIFY = """
import sys
from pathlib import Path
from model_signing import hashing, verifying
model, sig, pub, shard = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = verifying.Config().use_elliptic_key_verifier(public_key=pub)
if shard:
    cfg = cfg.set_hashing_config(hashing.Config().use_shard_serialization(shard_size=shard))
cfg.verify(Path(model), Path(sig))
"""


def ms_verify_inprocess(model: Path, sig: Path, pub: Path, shard: int) -> None:
    from model_signing import hashing, verifying

    cfg = verifying.Config().use_elliptic_key_verifier(public_key=pub)
    if shard:
        cfg = cfg.set_hashing_config(hashing.Config().use_shard_serialization(shard_size=shard))
    cfg.verify(model, sig)


def tl_verify_inprocess(model: Path, sig: Path, pub: Path) -> None:
    import trustload

    decision = trustload.verify_files(model, signature=sig, public_keys=[pub])
    if not decision.permitted:
        raise SystemExit(f"trustload denied: {decision.reasons}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="total model size")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="work here; do not delete")
    args = parser.parse_args()
    total = args.size_mib * 1024 * 1024

    work = args.keep or Path(tempfile.mkdtemp(prefix="trustload-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tl = trustload_cmd()
    try:
        print(f"cores: {os.cpu_count()}  work dir: {work}  python: {sys.version.split()[0]}")
        single = work / "model.bin"
        directory = work / "dirmodel"
        directory.mkdir(exist_ok=True)
        parts = [directory / f"part-{i}.bin" for i in range(4)]
        if not single.exists():
            write_random(single, total)
        for p in parts:
            if not p.exists():
                write_random(p, total // 4)
        pub = work / "bench.pub"
        key = work / "bench.key"
        if not key.exists():
            run([*tl, "keys", "generate", str(work / "bench")])
        single_sig = work / "model.bin.sig"
        dir_sig = work / "dirmodel.sig"
        run([*tl, "sign", str(single), "--key", str(key), "--out", str(single_sig)])
        run([*tl, "sign", str(directory), "--key", str(key), "--out", str(dir_sig)])
        shard_sig = work / "model.bin.shards.sig"
        sharded = ["--out", str(shard_sig), "--shard-size", str(SHARD_SIZE)]
        run([*tl, "sign", str(single), "--key", str(key), *sharded])
        warm([single, *parts])
        tiny = work / "tiny.bin"  # one warm-up run writes the byte-code caches
        tiny.write_bytes(b"warm-up")
        run([*tl, "sign", str(tiny), "--key", str(key), "--out", str(work / "tiny.sig")])
        run(
            [
                *tl,
                "verify-files",
                str(tiny),
                "--signature",
                str(work / "tiny.sig"),
                "--key",
                str(pub),
            ]
        )
        run(
            [
                PY,
                "-m",
                "trustload.cli.verify_files",
                str(tiny),
                "--signature",
                str(work / "tiny.sig"),
                "--key",
                str(pub),
            ]
        )

        rows = []
        for label, model, sig, files, shard in (
            (f"single file {args.size_mib} MiB", single, single_sig, [single], 0),
            (f"single, shards {args.size_mib} MiB", single, shard_sig, [single], SHARD_SIZE),
            (f"directory 4 x {args.size_mib // 4} MiB", directory, dir_sig, parts, 0),
        ):
            openssl = best(
                lambda files=files: run(["openssl", "dgst", "-sha256", *map(str, files)]),
                args.repeat,
            )
            cli = best(
                lambda model=model, sig=sig: run(
                    [*tl, "verify-files", str(model), "--signature", str(sig), "--key", str(pub)]
                ),
                args.repeat,
            )
            fast = best(
                lambda model=model, sig=sig: run(
                    [
                        PY,
                        "-m",
                        "trustload.cli.verify_files",
                        str(model),
                        "--signature",
                        str(sig),
                        "--key",
                        str(pub),
                    ]
                ),
                args.repeat,
            )
            ms_proc = best(
                lambda model=model, sig=sig, shard=shard: run(
                    [PY, "-c", MS_VERIFY, str(model), str(sig), str(pub), str(shard)]
                ),
                args.repeat,
            )
            tl_api = best(
                lambda model=model, sig=sig: tl_verify_inprocess(model, sig, pub), args.repeat
            )
            ms_api = best(
                lambda model=model, sig=sig, shard=shard: ms_verify_inprocess(
                    model, sig, pub, shard
                ),
                args.repeat,
            )
            rows.append((label, openssl, cli, fast, ms_proc, tl_api, ms_api))

        print()
        print(f"best of {args.repeat}, seconds (warm page cache)")
        print(
            "columns: openssl = openssl dgst -sha256; tl cli = trustload verify-files; "
            "tl fast = python -m trustload.cli.verify_files (no typer); ms proc = a python "
            "process running model-signing's verifier; tl api / ms api = the Python calls alone"
        )
        print(
            f"{'model':<26}{'openssl':>9}{'tl cli':>9}{'tl fast':>9}{'ms proc':>9}"
            f"{'tl api':>9}{'ms api':>9}"
        )
        for label, openssl, cli, fast, ms_proc, tl_api, ms_api in rows:
            print(
                f"{label:<26}{openssl:9.3f}{cli:9.3f}{fast:9.3f}{ms_proc:9.3f}"
                f"{tl_api:9.3f}{ms_api:9.3f}"
            )
        print()
        print(
            "targets: verify-files/openssl <= 0.65 (2 cores) where the signature lets the work"
            " be split (directory, shard mode; files mode of one file is one SHA-256 stream,"
            " ~1.0); trustload/model-signing <= 1.0"
        )
        for label, openssl, cli, fast, ms_proc, tl_api, ms_api in rows:
            print(
                f"RATIO {label}: verify-files/openssl={cli / openssl:.3f} "
                f"(fast path {fast / openssl:.3f}, API {tl_api / openssl:.3f}); "
                f"trustload/model-signing={cli / ms_proc:.3f} process, "
                f"{fast / ms_proc:.3f} fast path, {tl_api / ms_api:.3f} in-process"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
