"""`trustload dev-env`, `trustload token` and `trustload registry serve` as commands."""

from __future__ import annotations

import signal
import tomllib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.cli import run_cli as _cli
from tests.support.registry import publish_bytes, start_registry
from trustload.config import load_client_config, load_registry_config
from trustload.oidc import TokenVerifier, mint_from_dev_token


def test_dev_env_writes_the_documented_layout(tmp_path):
    root = tmp_path / "dev"
    proc = _cli("dev-env", str(root))
    assert proc.returncode == 0, proc.stderr
    assert "registry.toml" in proc.stdout
    for rel in (
        "registry.toml",
        "admin.toml",
        "gate.toml",
        "pki/ca.pem",
        "signing.key",
        "signing.pub",
    ):
        assert (root / rel).is_file(), rel
    assert (root / "policy").is_dir()
    from trustload.devenv import default_policy_dir

    shipped = sorted(
        p.name for p in default_policy_dir().iterdir() if p.suffix in (".rego", ".json")
    )
    assert sorted(p.name for p in (root / "policy").iterdir()) == shipped
    for name in ("registry.toml", "admin.toml", "gate.toml"):
        text = (root / name).read_text()
        assert str(tmp_path) not in text, f"{name} must use relative paths"

    service = load_registry_config(root / "registry.toml")
    assert service.server.cert.is_file() and service.server.client_ca.is_file()
    assert service.server.data_dir.parent == root.resolve()
    assert service.oidc.jwks_file is not None and service.oidc.jwks_file.is_file()
    gate = load_client_config(root / "gate.toml")
    admin = load_client_config(root / "admin.toml")
    assert gate.gate.environment == "prod"
    assert gate.registry.url.startswith("https://127.0.0.1:")
    assert gate.registry.allowlist == [gate.registry.url]
    assert gate.registry.dev_token is not None and gate.registry.dev_token.tenant == "A"
    assert admin.registry.dev_token is not None and admin.registry.dev_token.role == "admin"
    assert gate.gate.trusted_keys == [root.resolve() / "signing.pub"]
    for cfg in (gate, admin):
        assert cfg.registry.client_cert.is_file() and cfg.registry.client_key.is_file()
        assert str(cfg.gate.cache_dir).startswith(str(root.resolve()))

    key = serialization.load_pem_private_key((root / "signing.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert (root / "signing.key").read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (root / "signing.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert (root / "signing.key").stat().st_mode & 0o077 == 0

    # The dev token of each client config verifies against the Registry's JWKS.
    verifier = TokenVerifier(service.oidc)
    claims = verifier.verify(mint_from_dev_token(gate.registry.dev_token))
    assert (claims.tenant_id, claims.role, claims.purposes) == (
        "A",
        "consumer",
        ("credit_scoring",),
    )
    assert claims.sub == "spiffe://trustload.local/ns/serving/sa/gate"
    assert verifier.verify(mint_from_dev_token(admin.registry.dev_token)).role == "admin"


def test_dev_env_port_and_refusals(tmp_path):
    proc = _cli("dev-env", str(tmp_path / "p"), "--port", "18443")
    assert proc.returncode == 0, proc.stderr
    with (tmp_path / "p" / "registry.toml").open("rb") as fh:
        assert tomllib.load(fh)["server"]["listen"] == "127.0.0.1:18443"
    assert load_client_config(tmp_path / "p" / "gate.toml").registry.url.endswith(":18443")
    again = _cli("dev-env", str(tmp_path / "p"))
    assert again.returncode == 2
    assert "not an empty directory" in again.stderr


def test_token_command(dev_env):
    proc = _cli(
        "token",
        "--config",
        str(dev_env.registry_config),
        "--sub",
        "svc",
        "--tenant",
        "B",
        "--purpose",
        "fraud,credit_scoring",
        "--domain",
        "risk",
        "--ttl",
        "120",
        "--role",
        "publisher",
    )
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip()
    claims = TokenVerifier(load_registry_config(dev_env.registry_config).oidc).verify(token)
    assert claims.sub == "svc" and claims.tenant_id == "B" and claims.domain == "risk"
    assert claims.purposes == ("fraud", "credit_scoring") and claims.role == "publisher"
    assert claims.expires_at - claims.issued_at == 120
    bad = _cli(
        "token",
        "--config",
        str(dev_env.registry_config),
        "--sub",
        "s",
        "--tenant",
        "A",
        "--role",
        "root",
    )
    assert bad.returncode == 2


@pytest.mark.postgres_ok
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_url_and_stops_cleanly(dev_env, sig):
    with start_registry(dev_env) as running:
        assert running.url.startswith("https://127.0.0.1:")
        assert load_client_config(dev_env.gate_config).registry.url == running.url
        with running.consumer() as c:
            assert c.get("/healthz").status_code == 200
        assert running.stop(sig) == 0
        assert "Traceback" not in running.stderr()


def test_serve_with_bad_config_is_a_usage_error(dev_env):
    text = dev_env.registry_config.read_text().replace("pki/registry.pem", "pki/missing.pem")
    dev_env.registry_config.write_text(text)
    proc = _cli("registry", "serve", "--config", str(dev_env.registry_config))
    assert proc.returncode == 2
    assert "TLS material" in proc.stderr


@pytest.mark.postgres_ok
def test_restart_keeps_data(dev_env):
    with start_registry(dev_env) as first, first.admin() as c:
        assert publish_bytes(c, "kept", "1", b"persisted bytes").status_code == 201
    with start_registry(dev_env) as second, second.consumer() as c:
        rec = c.get("/v1/models/kept/resolve/1").json()
        assert rec["artifact_size"] == len(b"persisted bytes")
        assert c.get(f"/v1/blobs/sha256/{rec['artifact_digest'][7:]}").content == b"persisted bytes"


def test_set_registry_url_keeps_other_edits(dev_env):
    from trustload.devenv import set_registry_url

    gate = dev_env.gate_config
    gate.write_text(gate.read_text().replace("refresh_interval = 30", "refresh_interval = 7"))
    set_registry_url(dev_env.root, "https://127.0.0.1:4242")
    cfg = load_client_config(gate)
    assert cfg.registry.url == "https://127.0.0.1:4242"
    assert cfg.registry.allowlist == ["https://127.0.0.1:4242"]
    assert cfg.serve.refresh_interval == 7
    assert load_client_config(dev_env.admin_config).registry.url == "https://127.0.0.1:4242"


def test_serve_with_unreachable_database_is_a_usage_error(dev_env):
    text = dev_env.registry_config.read_text().replace(
        'database = "sqlite:///registry.db"',
        'database = "postgresql+psycopg://nobody:x@127.0.0.1:1/none?connect_timeout=2"',
    )
    dev_env.registry_config.write_text(text)
    proc = _cli("registry", "serve", "--config", str(dev_env.registry_config))
    assert proc.returncode == 2
    assert "cannot open the Registry database" in proc.stderr
    assert "Traceback" not in proc.stderr
