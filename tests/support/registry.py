"""Reusable test support: a dev environment and a real Registry process.

Fixtures (registered for every folder by tests/conftest.py):

* ``dev_env(tmp_path) -> DevEnv``: ``trustload.devenv.make_dev_env`` under ``tmp_path``
  (CA, server/client certificates, dev OIDC issuer, signing keys, configs), with
  helpers to mint tokens and build mTLS ``httpx`` clients.
* ``running_registry(dev_env) -> RunningRegistry``: ``trustload registry serve`` as a
  subprocess on an ephemeral port, ready once ``/healthz`` answers over mTLS; the
  URL is written into ``admin.toml`` and ``gate.toml``; terminated at teardown.
  With ``TRUSTLOAD_TEST_DATABASE_URL`` set (see scripts/with-postgres.sh) each
  registry gets a fresh PostgreSQL database, dropped at teardown.

Plain helpers (``start_registry``, ``upload_blob``, ``publish_bytes``) are importable
too: ``from tests.support.registry import publish_bytes``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import selectors
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from trustload.config import DevIssuerConfig, load_registry_config
from trustload.devenv import (
    ADMIN_IDENTITY,
    GATE_IDENTITY,
    DevEnvPaths,
    make_dev_env,
    set_registry_url,
)
from trustload.oidc import mint_token, sign_claims

DATABASE_ENV = "TRUSTLOAD_TEST_DATABASE_URL"
START_TIMEOUT = 30.0
POLICY_DIGEST = "sha256:" + "ab" * 32


def client_ssl_context(ca: Path, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    """mTLS client context: only our CA, TLS 1.2+, our certificate (httpx 0.28 drops
    ``cert=``, so the context carries it)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


@dataclass
class DevEnv:
    """A dev environment made by ``trustload dev-env`` logic, plus test helpers."""

    paths: DevEnvPaths
    issuer: DevIssuerConfig
    url: str = ""
    database_url: str | None = None  # set on first start under PostgreSQL
    _drop_database: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Drop this environment's PostgreSQL database, if one was made."""
        if self._drop_database is not None:
            drop, self._drop_database = self._drop_database, None
            drop()

    @property
    def root(self) -> Path:
        return self.paths.root

    @property
    def registry_config(self) -> Path:
        return self.paths.registry_config

    @property
    def admin_config(self) -> Path:
        return self.paths.admin_config

    @property
    def gate_config(self) -> Path:
        return self.paths.gate_config

    @property
    def ca(self) -> Path:
        return self.paths.ca_cert

    @property
    def signing_key(self) -> Path:
        return self.paths.signing_key

    @property
    def signing_pub(self) -> Path:
        return self.paths.signing_pub

    @property
    def policy_dir(self) -> Path:
        return self.paths.policy_dir

    def cert_paths(self, who: str) -> tuple[Path, Path]:
        """``gate`` or ``admin`` (pki/<who>.pem, pki/<who>.key)."""
        return self.root / "pki" / f"{who}.pem", self.root / "pki" / f"{who}.key"

    def ssl_context(self, who: str | None = "gate") -> ssl.SSLContext:
        cert, key = self.cert_paths(who) if who else (None, None)
        return client_ssl_context(self.ca, cert, key)

    def token(
        self,
        *,
        role: str = "consumer",
        tenant: str = "A",
        sub: str | None = None,
        purposes: Sequence[str] = ("credit_scoring",),
        domain: str | None = "credit",
        ttl: int = 300,
    ) -> str:
        default_sub = ADMIN_IDENTITY if role == "admin" else GATE_IDENTITY
        return mint_token(
            self.issuer,
            sub=sub or default_sub,
            tenant=tenant,
            purposes=purposes,
            domain=domain,
            role=role,
            ttl=ttl,
        )

    def raw_token(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return sign_claims(self.issuer, claims, headers=headers)

    def claims(self, **over: Any) -> dict[str, Any]:
        """A tenant-A consumer's valid claims (5 minutes from now), with ``over`` applied:
        the starting point of every hand-made (and hand-broken) token."""
        now = int(time.time())
        doc: dict[str, Any] = {
            "iss": self.issuer.issuer,
            "aud": self.issuer.audience,
            "sub": "spiffe://trustload.local/ns/serving/sa/gate",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "tenant_id": "A",
            "domain": "credit",
            "purpose": ["credit_scoring"],
            "role": "consumer",
        }
        doc.update(over)
        return doc

    def client(
        self,
        *,
        role: str = "consumer",
        tenant: str = "A",
        who: str | None = None,
        token: str | None = None,
        url: str | None = None,
        timeout: float = 30.0,
    ) -> httpx.Client:
        """An mTLS client with a bearer token (``token=""`` sends none)."""
        cert_owner = who or ("admin" if role in ("admin", "publisher") else "gate")
        tok = self.token(role=role, tenant=tenant) if token is None else token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.Client(
            base_url=url or self.url,
            verify=self.ssl_context(cert_owner),
            headers=headers,
            timeout=timeout,
        )


def make_test_env(root: Path) -> DevEnv:
    paths = make_dev_env(root, port=0)
    cfg = load_registry_config(paths.registry_config)
    assert cfg.dev_issuer is not None
    return DevEnv(paths=paths, issuer=cfg.dev_issuer)


@dataclass
class RunningRegistry:
    env: DevEnv
    url: str
    process: subprocess.Popen[bytes]
    stderr_path: Path
    database_url: str

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("url", self.url)
        return self.env.client(**kwargs)

    def admin(self, tenant: str = "A") -> httpx.Client:
        return self.client(role="admin", tenant=tenant)

    def publisher(self, tenant: str = "A") -> httpx.Client:
        return self.client(role="publisher", tenant=tenant)

    def consumer(self, tenant: str = "A") -> httpx.Client:
        return self.client(role="consumer", tenant=tenant)

    @property
    def data_dir(self) -> Path:
        return self.env.root / "registry-data"

    def blob_path(self, digest: str) -> Path:
        return self.data_dir / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Stop the process (SIGTERM by default) and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def _fresh_database(base_url: str) -> tuple[str, Any]:
    """A new, empty PostgreSQL database on the server ``base_url`` points at."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(base_url)
    name = f"tl_{uuid.uuid4().hex[:16]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def _set_database(registry_toml: Path, database_url: str) -> None:
    text = registry_toml.read_text()
    line = 'database = "sqlite:///registry.db"'
    assert line in text
    registry_toml.write_text(text.replace(line, f'database = "{database_url}"'))


def _read_url(proc: subprocess.Popen[bytes], stderr_path: Path, deadline: float) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise RuntimeError(
                    f"registry did not start (rc={proc.poll()}):\n"
                    + stderr_path.read_text(errors="replace")
                )
            if sel.select(timeout=min(left, 0.5)):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    continue
                buf += chunk
    finally:
        sel.close()
    return buf.split(b"\n", 1)[0].decode().strip()


@contextlib.contextmanager
def start_registry(env: DevEnv) -> Iterator[RunningRegistry]:
    """Run ``trustload registry serve`` for ``env`` until the block exits.

    May be called again on the same ``env`` (a restart): the data persist. Under
    ``TRUSTLOAD_TEST_DATABASE_URL`` the first start makes the env's fresh PostgreSQL
    database; ``env.close()`` (the ``dev_env`` fixture does it) drops it.
    """
    base = os.environ.get(DATABASE_ENV)
    if base and env.database_url is None:
        env.database_url, env._drop_database = _fresh_database(base)
        _set_database(env.registry_config, env.database_url)
    stderr_path = env.root / f"registry-{uuid.uuid4().hex[:8]}.stderr"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trustload.cli.main",
                "registry",
                "serve",
                "--config",
                str(env.registry_config),
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=env.root,
        )
    running: RunningRegistry | None = None
    try:
        deadline = time.monotonic() + START_TIMEOUT
        url = _read_url(proc, stderr_path, deadline)
        env.url = url
        set_registry_url(env.root, url)
        running = RunningRegistry(env, url, proc, stderr_path, env.database_url or "sqlite")
        with env.client(url=url, token="") as c:
            while True:
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("registry never became healthy:\n" + running.stderr())
                time.sleep(0.05)
        yield running
    finally:
        if running is not None:
            running.stop()
        elif proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def dev_env(tmp_path: Path) -> Iterator[DevEnv]:
    env = make_test_env(tmp_path / "env")
    yield env
    env.close()


@pytest.fixture
def running_registry(dev_env: DevEnv) -> Iterator[RunningRegistry]:
    with start_registry(dev_env) as running:
        yield running


# --------------------------------------------------------------------------- publishing


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload_blob(client: httpx.Client, data: bytes) -> str:
    """Upload ``data``; return ``sha256:<hex>``."""
    hexdigest = sha256_hex(data)
    resp = client.post(f"/v1/blobs/sha256/{hexdigest}", content=data)
    assert resp.status_code in (200, 201), resp.text
    return f"sha256:{hexdigest}"


def default_card(tenant: str = "A") -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "domain": "credit",
        "purpose": {"allowed": ["credit_scoring"]},
        "revalidate_by": "2099-01-01T00:00:00Z",
        "format": "onnx",
    }


def publish_bytes(
    client: httpx.Client,
    name: str,
    version: str,
    data: bytes,
    *,
    tenant: str = "A",
    card: dict[str, Any] | None = None,
    signature: bytes | None = b'{"fake": "signature bundle"}',
    attestation: bytes | None = b'{"fake": "attestation"}',
    **overrides: Any,
) -> httpx.Response:
    """Upload a one-file model (plus optional signature/attestation blobs) and publish
    it through the raw HTTP API (no signing: Registry tests need only the records)."""
    digest = upload_blob(client, data)
    body: dict[str, Any] = {
        "version": version,
        "artifact_digest": digest,
        "artifact_size": len(data),
        "kind": "file",
        "format": "onnx",
        "files": [{"path": "model.onnx", "sha256": digest[7:], "size": len(data)}],
        "policy_digest": POLICY_DIGEST,
        "git_sha": "0" * 40,
        "container_digest": "sha256:" + "cd" * 32,
        "dataset_snapshot": "ds-2026-01",
        "signature_digest": upload_blob(client, signature) if signature is not None else None,
        "attestation_digest": upload_blob(client, attestation) if attestation is not None else None,
        "card": card if card is not None else default_card(tenant),
    }
    body.update(overrides)
    return client.post(f"/v1/models/{name}/versions", json=body)
