"""Run schemathesis (a third-party API fuzzer) against a live dev-env Registry over mTLS.

Why: the served /openapi.json is the Registry's contract; schemathesis derives requests
from it (examples, coverage, fuzzing and the stateful phase along its links) and checks
every answer against it (status codes, error bodies, headers, media types, auth, 5xx).
It runs once per role (admin, publisher of a second tenant, consumer), each within a
time budget, and always stops the Registry it started. Exit status: 0 clean, 1 findings.

Usage: ``python scripts/api_fuzz.py [--budget SECONDS] [--seed N] [--report-dir DIR]``
(``make api-fuzz``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "scripts"))

import generated_client_check  # noqa: E402
from tests.support.registry import (  # noqa: E402  (the repository root is on sys.path now)
    DevEnv,
    make_test_env,
    publish_bytes,
    start_registry,
)

ROLES = (
    # (label, role, tenant, client certificate)
    ("admin", "admin", "A", "admin"),
    ("publisher-B", "publisher", "B", "admin"),
    ("consumer", "consumer", "A", "gate"),
)
CONFIG = ROOT / "scripts" / "schemathesis.toml"


SEED_NAME, SEED_VERSION, SEED_ALIAS = "risk", "1", "production"
SEED_BYTES = b"seed model bytes"


def seed(env: DevEnv, url: str) -> None:
    """One real model (approved, aliased) so reads, governance and stateful links meet
    existing records, not only 404s."""
    with env.client(role="admin", url=url) as c:
        resp = publish_bytes(c, SEED_NAME, SEED_VERSION, SEED_BYTES)
        if resp.status_code != 201:
            raise SystemExit(f"seeding failed: {resp.status_code} {resp.text[:200]}")
        base = f"/v1/models/{SEED_NAME}"
        c.put(f"{base}/versions/{SEED_VERSION}/stage", json={"stage": "Approved"})
        c.put(f"{base}/aliases/{SEED_ALIAS}", json={"version": SEED_VERSION})


def write_config(dest: Path) -> Path:
    """scripts/schemathesis.toml plus dictionaries of the seeded identifiers: half of the
    generated names, versions, refs and blob digests are real ones."""
    hexdigest = hashlib.sha256(SEED_BYTES).hexdigest()
    seeded = f"""
[dictionaries]
models = {{ values = ["{SEED_NAME}"] }}
versions = {{ values = ["{SEED_VERSION}"] }}
refs = {{ values = ["{SEED_VERSION}", "{SEED_ALIAS}"] }}
blobs = {{ values = ["{hexdigest}"] }}

[parameters]
"path.name" = {{ dictionary = "models", probability = 0.5 }}
"query.model" = {{ dictionary = "models", probability = 0.5 }}
"path.version" = {{ dictionary = "versions", probability = 0.5 }}
"path.ref" = {{ dictionary = "refs", probability = 0.5 }}
"path.alias" = {{ dictionary = "refs", probability = 0.5 }}
"path.hexdigest" = {{ dictionary = "blobs", probability = 0.5 }}
"""
    path = dest / "schemathesis.toml"
    path.write_text(CONFIG.read_text() + seeded)
    return path


def run_role(
    env: DevEnv, url: str, role: tuple[str, str, str, str], args: argparse.Namespace
) -> int:
    label, claim_role, tenant, cert_owner = role
    cert, key = env.cert_paths(cert_owner)
    token = env.token(role=claim_role, tenant=tenant, ttl=600)
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(write_config(env.root)),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-time",
        str(args.budget),
        "--seed",
        str(args.seed),
        "--workers",
        "1",
        "--tls-verify",
        str(env.ca),
        "--request-cert",
        str(cert),
        "--request-cert-key",
        str(key),
        "--request-timeout",
        "10",
        "-H",
        f"Authorization: Bearer {token}",
        "--report",
        "junit",
        "--report-dir",
        str(Path(args.report_dir) / label),
        *args.extra,
    ]
    print(f"== schemathesis as {label} (role {claim_role}, tenant {tenant})", flush=True)
    started = time.monotonic()
    rc = subprocess.call(cmd, cwd=env.root, timeout=args.budget * 3 + 60)  # its cache: temp
    print(f"== {label}: exit {rc} in {time.monotonic() - started:.1f} s", flush=True)
    return rc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=30, help="seconds per role")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("API_FUZZ_SEED", "1")))
    parser.add_argument("--report-dir", default=str(ROOT / "schemathesis-report"))
    parser.add_argument("--only", help="run one role label only (admin, publisher-B, consumer)")
    parser.add_argument("extra", nargs="*", help="more schemathesis options (after --)")
    args = parser.parse_args()
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so the Registry is always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="trustload-api-fuzz-"))
    env = make_test_env(work / "env")
    failed = []
    started = time.monotonic()
    try:
        with start_registry(env) as running:
            seed(env, running.url)
            for role in ROLES:
                if args.only and role[0] != args.only:
                    continue
                if run_role(env, running.url, role, args) != 0:
                    failed.append(role[0])
            try:
                (work / "client").mkdir()
                generated_client_check.check(env, running.url, work / "client")
                print("== generated client (openapi-python-client): ok", flush=True)
            except Exception as exc:  # any breach of the contract is a finding
                traceback.print_exc()
                print(f"== generated client (openapi-python-client): FAILED {exc!r}")
                failed.append("generated-client")
            if running.process.poll() is not None:
                print("the Registry died during the run", file=sys.stderr)
                failed.append("registry-process")
    finally:
        env.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"api-fuzz: {time.monotonic() - started:.1f} s total; failed roles: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
