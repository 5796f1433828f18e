"""``trustload dev-env DIR``: a self-contained local environment (INTERFACE.md).

Everything lives inside DIR and every path inside the configs is relative to the
config file, so the directory can be moved or deleted as a whole. Layout::

    registry.toml admin.toml gate.toml
    pki/ca.pem pki/ca.key                CA every party trusts (key: to issue more certs)
    pki/registry.pem pki/registry.key    server certificate (localhost, 127.0.0.1)
    pki/gate.pem pki/gate.key            serving workload (tenant A, prod)
    pki/admin.pem pki/admin.key          publisher / governance identity
    oidc/issuer.key oidc/jwks.json       dev OIDC issuer (ES256) and its JWKS
    signing.key signing.pub              the publisher's model-signing key pair
    policy/                              the runtime policy bundle
    registry.db registry-data/           the Registry's database and blob store
    cache/ state/ audit.jsonl            the gate's (made on first use)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from trustload.errors import UsageError
from trustload.pki import issue_client_cert, issue_server_cert, new_ca, spiffe_id

DEV_ISSUER = "https://issuer.trustload.local"
DEV_AUDIENCE = "trustload-registry"
DEV_KID = "dev-issuer-1"
GATE_IDENTITY = spiffe_id("serving", "gate")
ADMIN_IDENTITY = spiffe_id("governance", "admin")
DEV_TENANT = "A"
DEV_DOMAIN = "credit"
DEV_PURPOSES = ("credit_scoring",)


@dataclass(frozen=True)
class DevEnvPaths:
    """Where ``make_dev_env`` put things (all absolute)."""

    root: Path
    registry_config: Path
    admin_config: Path
    gate_config: Path
    ca_cert: Path
    ca_key: Path
    signing_key: Path
    signing_pub: Path
    policy_dir: Path
    url: str

    @classmethod
    def at(cls, root: Path, url: str) -> DevEnvPaths:
        root = root.resolve()
        return cls(
            root=root,
            registry_config=root / "registry.toml",
            admin_config=root / "admin.toml",
            gate_config=root / "gate.toml",
            ca_cert=root / "pki" / "ca.pem",
            ca_key=root / "pki" / "ca.key",
            signing_key=root / "signing.key",
            signing_pub=root / "signing.pub",
            policy_dir=root / "policy",
            url=url,
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now (the kernel's choice); the Registry binds it later."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _q(value: str) -> str:
    """A TOML basic string (JSON string syntax is a subset of it for our values)."""
    return json.dumps(value)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _signing_keypair(root: Path) -> None:
    """The publisher's key pair, ``signing.key`` (PKCS#8 PEM ECDSA P-256, unencrypted in
    a dev environment) and ``signing.pub`` (SPKI PEM), as ``trustload keys generate``."""
    from trustload.crypto.keys import generate_keypair

    generate_keypair(root / "signing", password=None)


def default_policy_dir() -> Path:
    return Path(__file__).resolve().parent / "policy" / "default"


def _copy_policy(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    source = default_policy_dir()
    if not source.is_dir():
        return
    for item in sorted(source.iterdir()):
        if item.is_file() and item.suffix in (".rego", ".json"):
            shutil.copyfile(item, target / item.name)


def registry_toml(listen: str) -> str:
    return f"""# The Registry service (trustload registry serve --config registry.toml).
# Paths are relative to this file.
[server]
listen = {_q(listen)}
cert = "pki/registry.pem"
key = "pki/registry.key"
client_ca = "pki/ca.pem"
database = "sqlite:///registry.db"
data_dir = "registry-data"

[oidc]
issuer = {_q(DEV_ISSUER)}
audience = {_q(DEV_AUDIENCE)}
jwks_file = "oidc/jwks.json"
algorithms = ["ES256"]
max_token_lifetime = 3600
leeway = 30

[dev_issuer]
private_key = "oidc/issuer.key"
kid = {_q(DEV_KID)}
issuer = {_q(DEV_ISSUER)}
audience = {_q(DEV_AUDIENCE)}
"""


def _registry_block(url: str, identity: str, cert: str, role: str, sub: str) -> str:
    purposes = ", ".join(_q(p) for p in DEV_PURPOSES)
    return f"""[registry]
url = {_q(url)}
allowlist = [{_q(url)}]
ca = "pki/ca.pem"
client_cert = "pki/{cert}.pem"
client_key = "pki/{cert}.key"

# A fresh token is minted by the dev issuer for every request (production: token_file).
[registry.dev_token]
issuer_config = "registry.toml"
sub = {_q(sub)}
tenant = {_q(DEV_TENANT)}
purpose = [{purposes}]
domain = {_q(DEV_DOMAIN)}
role = {_q(role)}
ttl = 300
"""


def admin_toml(url: str) -> str:
    return "# A publisher / governance identity of tenant A (role admin).\n" + _registry_block(
        url, ADMIN_IDENTITY, "admin", "admin", ADMIN_IDENTITY
    )


def gate_toml(url: str, serve_listen: str) -> str:
    return (
        "# A serving workload of tenant A in environment prod.\n"
        + _registry_block(url, GATE_IDENTITY, "gate", "consumer", GATE_IDENTITY)
        + f"""
[gate]
environment = "prod"
policy_dir = "policy"
cache_dir = "cache"
state_dir = "state"
audit_log = "audit.jsonl"
trusted_keys = ["signing.pub"]

[serve]
listen = {_q(serve_listen)}
refresh_interval = 30
"""
    )


def set_registry_url(root: Path, url: str) -> None:
    """Point admin.toml and gate.toml at ``url`` (e.g. once an ephemeral port is known).

    Only the ``[registry]`` ``url`` and ``allowlist`` lines change; anything else an
    operator (or a test) edited in those files is kept. An allowlist that named the old
    URL names the new one instead; other entries stay.
    """
    for name in ("admin.toml", "gate.toml"):
        path = root / name
        text = path.read_text(encoding="utf-8")
        old = re.search(r'^url = "([^"]*)"$', text, flags=re.M)
        if old is None:
            raise UsageError(f"{path} has no [registry] url line to update")
        previous = old.group(1)
        text = text[: old.start()] + f"url = {_q(url)}" + text[old.end() :]
        text = text.replace(f"{_q(previous)}", _q(url)) if previous else text
        path.write_text(text, encoding="utf-8")


def make_dev_env(root: Path, *, port: int | None = None, host: str = "127.0.0.1") -> DevEnvPaths:
    """Create the environment in ``root`` (which must be absent or empty)."""
    from trustload.oidc import jwks_document
    from trustload.pki import new_key, write_key

    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UsageError(f"{root} exists and is not an empty directory")
    if port is not None and not 0 <= port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {port}")
    root.mkdir(parents=True, exist_ok=True)
    listen_port = free_port(host) if port is None else port
    url = f"https://{host}:{listen_port}"

    pki = root / "pki"
    ca = new_ca()
    ca.write(pki / "ca.pem", pki / "ca.key")
    issue_server_cert(ca, ("localhost", "127.0.0.1")).write(
        pki / "registry.pem", pki / "registry.key"
    )
    issue_client_cert(ca, GATE_IDENTITY).write(pki / "gate.pem", pki / "gate.key")
    issue_client_cert(ca, ADMIN_IDENTITY).write(pki / "admin.pem", pki / "admin.key")

    issuer_key = new_key()
    write_key(root / "oidc" / "issuer.key", issuer_key)
    _write(root / "oidc" / "jwks.json", json.dumps(jwks_document(issuer_key, DEV_KID), indent=2))

    _signing_keypair(root)
    _copy_policy(root / "policy")
    (root / "registry-data").mkdir(exist_ok=True)

    _write(root / "registry.toml", registry_toml(f"{host}:{listen_port}"))
    _write(root / "admin.toml", admin_toml(url))
    _write(root / "gate.toml", gate_toml(url, f"{host}:{free_port(host)}"))
    return DevEnvPaths.at(root, url)


def describe(paths: DevEnvPaths) -> str:
    root = paths.root
    lines = [
        f"dev environment in {root}",
        f"  registry.toml  the Registry ({paths.url}; mTLS + OIDC; blobs in registry-data/)",
        "  admin.toml     admin identity of tenant A (publish, govern)",
        "  gate.toml      serving identity of tenant A, environment prod",
        "  pki/ca.pem     the CA every party trusts (server + client certificates in pki/)",
        "  oidc/          dev OIDC issuer key and JWKS",
        "  signing.key    the publisher's signing key (signing.pub is trusted by gate.toml)",
        "  policy/        the runtime policy bundle",
        "next:",
        f"  trustload registry serve --config {os.path.relpath(paths.registry_config)}",
    ]
    return "\n".join(lines)
