"""A real OCI registry for tests: Debian's ``docker-registry`` (distribution 2.8).

Started on a free 127.0.0.x port with TLS from the throwaway test PKI, storage under
tmp, in one of three auth modes: none, htpasswd Basic (bcrypt, made by ``htpasswd -B``
from apache2-utils), or the distribution token spec (a small real token server in this
file, issuing ES256 JWTs whose ``x5c`` chains to the test CA). Always stopped.

Tests that need it skip, with the install line, when the binary is missing; ``.ci/run``
installs it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.client.pki import CA, Identity
from tests.client.tlsserver import Handler, TLSServer
from trustload.config import OciConfig, OciRegistryConfig

REGISTRY_BIN = "/usr/bin/docker-registry"
SERVICE = "trustload-test-registry"
ISSUER = "trustload-test-token-issuer"


def need_registry() -> str:
    binary = shutil.which("docker-registry") or (
        REGISTRY_BIN if Path(REGISTRY_BIN).exists() else None
    )
    if binary is None:
        pytest.skip("docker-registry missing: apt-get install -y docker-registry")
    return binary


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


@dataclass
class RunningOciRegistry:
    host: str  # "127.0.0.1:PORT"
    ca: Path
    root: Path
    username: str | None = None
    password_file: Path | None = None
    client: Identity | None = None
    token_server: TokenServer | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def entry(self, **over: Any) -> OciRegistryConfig:
        values: dict[str, Any] = {
            "host": self.host,
            "ca": self.ca,
            "username": self.username,
            "password_file": self.password_file,
            "client_cert": self.client.cert if self.client else None,
            "client_key": self.client.key if self.client else None,
            "slow_grace": 2.0,
            "read_timeout": 5.0,
        }
        values.update(over)
        return OciRegistryConfig(**values)

    def config(self, *extra: OciRegistryConfig, **over: Any) -> OciConfig:
        entries = [self.entry(**over), *extra]
        if self.token_server is not None:
            entries.append(OciRegistryConfig(host=self.token_server.host, ca=self.ca))
        return OciConfig(registries=entries)

    def toml(self, path: Path) -> Path:
        """A ``--config`` file listing this registry (and its token server)."""
        lines: list[str] = []
        for e in self.config().registries:
            lines.append("[[oci.registries]]")
            for key in ("host", "ca", "client_cert", "client_key", "username", "password_file"):
                value = getattr(e, key)
                if value is not None:
                    lines.append(f"{key} = {json.dumps(str(value))}")
        path.write_text("\n".join(lines) + "\n")
        return path


class TokenServer:
    """The distribution token spec's authorization server: Basic in, ES256 JWT out."""

    def __init__(self, ca: CA, identity: Identity, users: dict[str, str]) -> None:
        from cryptography.hazmat.primitives import serialization

        self.users = users
        self.signer = ca.issue("token-signer", server=True)
        self.key = serialization.load_pem_private_key(self.signer.key.read_bytes(), None)
        from cryptography import x509

        der = x509.load_pem_x509_certificate(self.signer.cert.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        self.x5c = base64.b64encode(der).decode()
        self.server = TLSServer(identity.cert, identity.key, None, [(r"/token.*", self._token)])
        self.issued = 0
        self.refuse_all = False

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def realm(self) -> str:
        return f"https://{self.host}/token"

    def _token(self, h: Handler) -> None:
        import jwt

        auth = h.headers.get("Authorization", "")
        try:
            user, _, password = (
                base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
            )
        except (ValueError, UnicodeDecodeError):
            user, password = "", ""
        if self.refuse_all or self.users.get(user) != password:
            h.send_json(401, {"errors": [{"code": "UNAUTHORIZED"}]})
            return
        query = parse_qs(urlsplit(h.path).query)
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": query.get("service", [SERVICE])[0],
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": [self.x5c]})  # type: ignore[arg-type]
        self.issued += 1
        h.send_json(200, {"token": token, "expires_in": 300})

    def __enter__(self) -> TokenServer:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)


def _wait_tls(ip: str, port: int, ca: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            with (
                socket.create_connection((ip, port), timeout=1) as raw,
                ctx.wrap_socket(raw, server_hostname=ip),
            ):
                return
        except (OSError, ssl.SSLError):
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not come up: {log.read_text()[-2000:]}")


@contextmanager
def oci_registry(
    root: Path,
    ca: CA,
    *,
    auth: str = "none",  # "none" | "basic" | "token"
    ip: str = "127.0.0.1",
    mtls: bool = False,
    name: str = "ocireg",
) -> Iterator[RunningOciRegistry]:
    binary = need_registry()
    root.mkdir(parents=True, exist_ok=True)
    server = ca.issue(f"{name}-server", server=True, hosts=("127.0.0.1", "127.0.0.2", "localhost"))
    port = free_port(ip)
    storage = root / "storage"
    storage.mkdir(exist_ok=True)
    reg = RunningOciRegistry(host=f"{ip}:{port}", ca=ca.pem, root=root)
    lines = [
        "version: 0.1",
        "log: {level: error, accesslog: {disabled: true}}",
        f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}",
        "http:",
        f"  addr: {ip}:{port}",
        f"  secret: {uuid.uuid4().hex}",
        "  tls:",
        f"    certificate: {server.cert}",
        f"    key: {server.key}",
    ]
    if mtls:
        lines += ["    clientcas:", f"      - {ca.pem}"]
        reg.client = ca.issue(f"{name}-client", server=False)
    token: TokenServer | None = None
    if auth in ("basic", "token"):
        reg.username, password = "ci-signer", uuid.uuid4().hex
        reg.password_file = root / "oci-password"
        reg.password_file.write_text(password + "\n")
    if auth == "basic":
        htpasswd = shutil.which("htpasswd")
        if htpasswd is None:
            pytest.skip("htpasswd missing: apt-get install -y apache2-utils")
        out = subprocess.run(
            [htpasswd, "-Bbn", reg.username or "", password], check=True, capture_output=True
        ).stdout
        (root / "htpasswd").write_bytes(out)
        lines += ["auth:", f"  htpasswd: {{realm: trustload-test, path: {root / 'htpasswd'}}}"]
    elif auth == "token":
        token = TokenServer(ca, server, {reg.username or "": password})
        token.__enter__()
        reg.token_server = token
        lines += [
            "auth:",
            "  token:",
            f"    realm: {token.realm}",
            f"    service: {SERVICE}",
            f"    issuer: {ISSUER}",
            f"    rootcertbundle: {ca.pem}",
        ]
    config = root / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = root / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own test binary
            [binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    reg.proc = proc
    try:
        _wait_tls(ip, port, ca.pem, proc, log)
        yield reg
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if token is not None:
            token.__exit__(None, None, None)


# ------------------------------------------------------------------- test images


@dataclass(frozen=True)
class SmallImage:
    digest: str
    manifest: bytes
    config: bytes
    layer: bytes


def make_image(payload: bytes = b"hello from a tiny test image\n") -> SmallImage:
    """A tiny OCI image: one gzip'd tar layer holding one file, its config, the manifest."""
    import gzip
    import io
    import tarfile

    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(payload)
        info.mtime = 0
        tf.addfile(info, io.BytesIO(payload))
    diff_id = "sha256:" + hashlib.sha256(tar.getvalue()).hexdigest()
    layer = gzip.compress(tar.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        },
        separators=(",", ":"),
    ).encode()

    def desc(media: str, data: bytes) -> dict[str, Any]:
        return {
            "mediaType": media,
            "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": desc("application/vnd.oci.image.config.v1+json", config),
            "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
        },
        separators=(",", ":"),
    ).encode()
    return SmallImage("sha256:" + hashlib.sha256(manifest).hexdigest(), manifest, config, layer)


def push_image(repo: Any, image: SmallImage, tag: str | None = "v1") -> str:
    """Push with trustload's own client (``RegistryRepository``); returns the digest."""
    repo.push_bytes(image.config)
    repo.push_bytes(image.layer)
    return str(
        repo.push_manifest(
            image.manifest, "application/vnd.oci.image.manifest.v1+json", tag or image.digest
        )
    )


@pytest.fixture
def oci_ca(tmp_path: Path) -> CA:
    return CA(tmp_path / "oci-pki", "oci-test-ca")


@pytest.fixture
def ocireg(tmp_path: Path, oci_ca: CA) -> Iterator[RunningOciRegistry]:
    with oci_registry(tmp_path / "reg", oci_ca) as reg:
        yield reg


@pytest.fixture
def ocireg_basic(tmp_path: Path, oci_ca: CA) -> Iterator[RunningOciRegistry]:
    with oci_registry(tmp_path / "reg-basic", oci_ca, auth="basic", name="basic") as reg:
        yield reg


@pytest.fixture
def ocireg_token(tmp_path: Path, oci_ca: CA) -> Iterator[RunningOciRegistry]:
    with oci_registry(tmp_path / "reg-token", oci_ca, auth="token", name="token") as reg:
        yield reg
