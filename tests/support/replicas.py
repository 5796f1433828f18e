"""Stateless Registry replicas for tests and bench/fleet.py: one PostgreSQL, blobs in
an OCI registry (``[server] blob_store``), each replica its own empty ``data_dir``.

* ``postgres_url()``: ``TRUSTLOAD_TEST_DATABASE_URL`` when set (scripts/with-postgres.sh),
  else a throwaway cluster (initdb + pg_ctl, fsync off, private port and socket) that is
  always torn down. Skips only when PostgreSQL's server binaries are absent.
* ``use_oci_blob_store(env, oci, repo)``: point ``env``'s registry.toml at the OCI
  registry, listing it (CA, credentials) in ``[[oci.registries]]``.
* ``replica_env(env, n)``: a copy of ``env`` (same PKI, issuer and keys) whose
  registry.toml differs only in ``data_dir``; admin/gate configs point at replica ``n``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ocireg import RunningOciRegistry, free_port
from tests.support.registry import DATABASE_ENV, DevEnv, _fresh_database, _set_database
from trustload.config import load_registry_config
from trustload.devenv import DevEnvPaths

PG_START_TIMEOUT = 30


def _pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A private PostgreSQL cluster on 127.0.0.1; yields its admin URL."""
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL server binaries missing: apt-get install -y postgresql")
    work = Path(tempfile.mkdtemp(prefix="trustload-pg."))
    data, sock = work / "data", work / "sock"
    sock.mkdir()
    password = secrets.token_hex(16)
    (work / "pwfile").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
        for p in (sock, work / "pwfile"):
            shutil.chown(p, "postgres", "postgres")
    os.chmod(work, 0o700)
    port = free_port()
    ctl = str(pg / "pg_ctl")
    try:
        subprocess.run(
            _as_postgres(
                [str(pg / "initdb"), "-D", str(data), "-U", "trustload"]
                + [f"--pwfile={work / 'pwfile'}", "--auth-local=trust"]
                + ["--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = (
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        subprocess.run(
            _as_postgres([ctl, "-D", str(data), "-l", str(work / "pg.log")])
            + ["-w", "-t", str(PG_START_TIMEOUT), "-o", options, "start"],
            check=True,
            capture_output=True,
            timeout=PG_START_TIMEOUT + 10,
        )
        yield f"postgresql+psycopg://trustload:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """The server a fresh database is made on (the suite's, or a throwaway one)."""
    base = os.environ.get(DATABASE_ENV)
    if base:
        yield base
        return
    with throwaway_postgres() as url:
        yield url


@contextlib.contextmanager
def shared_database(env: DevEnv, base_url: str) -> Iterator[str]:
    """A fresh database on ``base_url`` for ``env`` (and the replicas copied from it)."""
    url, drop = _fresh_database(base_url)
    _set_database(env.registry_config, url)
    env.database_url = url
    try:
        yield url
    finally:
        env.database_url = None
        drop()


def use_oci_blob_store(
    env: DevEnv, oci: RunningOciRegistry, repo: str, *, read_timeout: float = 10.0
) -> str:
    """Keep ``env``'s Registry blobs in ``oci`` (repository ``repo``); returns the URI."""
    uri = f"oci://{oci.host}/{repo}"
    text = env.registry_config.read_text()
    anchor = 'data_dir = "registry-data"\n'
    assert anchor in text
    text = text.replace(anchor, anchor + f"blob_store = {json.dumps(uri)}\n")
    lines = ["", "[[oci.registries]]"]
    for e in oci.config().registries:
        for key in ("host", "ca", "client_cert", "client_key", "username", "password_file"):
            value = getattr(e, key)
            if value is not None:
                lines.append(f"{key} = {json.dumps(str(value))}")
        lines += [f"read_timeout = {read_timeout}", "connect_timeout = 3.0", "retries = 1", ""]
        lines.append("[[oci.registries]]")
    env.registry_config.write_text(text + "\n".join(lines[:-1]) + "\n")
    load_registry_config(env.registry_config)  # a bad edit fails here, not at start
    return uri


def replica_env(env: DevEnv, n: int) -> DevEnv:
    """Replica ``n`` of ``env``: the same files (PKI, issuer, keys, database, blob
    store), copied before any Registry ran, so its ``data_dir`` starts empty."""
    root = env.root.parent / f"{env.root.name}-replica{n}"
    shutil.copytree(env.root, root, ignore=shutil.ignore_patterns("registry-data", "*.stderr"))
    return DevEnv(
        paths=DevEnvPaths.at(root, ""), issuer=env.issuer, database_url=env.database_url
    )
