"""Key generation and loading: plain, encrypted, wrong password, garbage, CLI exit codes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from trustload.crypto.keys import (
    fingerprint,
    generate_keypair,
    key_password_from_env,
    load_private_key,
    load_public_key_pem,
)
from trustload.errors import UsageError


def test_plain_keypair(tmp_path: Path) -> None:
    key_path, pub_path = generate_keypair(tmp_path / "k")
    assert key_path.name == "k.key" and pub_path.name == "k.pub"
    assert b"BEGIN PRIVATE KEY" in key_path.read_bytes()
    assert b"BEGIN PUBLIC KEY" in pub_path.read_bytes()
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    key = load_private_key(key_path)
    pub = load_public_key_pem(pub_path.read_bytes())
    assert fingerprint(key.public_key()) == fingerprint(pub)  # type: ignore[arg-type]
    assert key.curve.name == "secp256r1"  # type: ignore[union-attr]


def test_encrypted_keypair(tmp_path: Path) -> None:
    key_path, _ = generate_keypair(tmp_path / "k", b"s3cret")
    assert b"ENCRYPTED PRIVATE KEY" in key_path.read_bytes()
    load_private_key(key_path, b"s3cret")
    with pytest.raises(UsageError, match="wrong password"):
        load_private_key(key_path, b"wrong")
    with pytest.raises(UsageError, match="encrypted"):
        load_private_key(key_path, None)


def test_password_given_for_plain_key(tmp_path: Path) -> None:
    key_path, _ = generate_keypair(tmp_path / "k")
    with pytest.raises(UsageError):
        load_private_key(key_path, b"unneeded")


def test_garbage_key_files(tmp_path: Path) -> None:
    for content in (
        b"",
        b"not a key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"\xff" * 100,
    ):
        p = tmp_path / "bad.key"
        p.write_bytes(content)
        with pytest.raises(UsageError):
            load_private_key(p)
    big = tmp_path / "big.key"
    big.write_bytes(b"A" * 200_000)
    with pytest.raises(UsageError, match="too large"):
        load_private_key(big)
    with pytest.raises(UsageError):
        load_private_key(tmp_path / "missing.key")
    with pytest.raises(ValueError):
        load_public_key_pem(b"-----BEGIN PUBLIC KEY-----\nZm9v\n-----END PUBLIC KEY-----\n")


def test_refuses_overwrite(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k")
    with pytest.raises(UsageError, match="overwrite"):
        generate_keypair(tmp_path / "k")


def test_password_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUSTLOAD_KEY_PASSWORD", raising=False)
    assert key_password_from_env() is None
    monkeypatch.setenv("TRUSTLOAD_KEY_PASSWORD", "pw")
    assert key_password_from_env() == b"pw"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "TRUSTLOAD_KEY_PASSWORD"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "trustload.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def test_cli_keys_and_sign_exit_codes(tmp_path: Path) -> None:
    r = _cli("keys", "generate", str(tmp_path / "enc"), env={"TRUSTLOAD_KEY_PASSWORD": "pw"})
    assert r.returncode == 0, r.stderr
    assert b"ENCRYPTED" in (tmp_path / "enc.key").read_bytes()
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    r = _cli(
        "sign",
        str(model),
        "--key",
        str(tmp_path / "enc.key"),
        env={"TRUSTLOAD_KEY_PASSWORD": "bad"},
    )
    assert r.returncode == 2 and "wrong password" in r.stderr and "Traceback" not in r.stderr
    r = _cli(
        "sign", str(model), "--key", str(tmp_path / "enc.key"), env={"TRUSTLOAD_KEY_PASSWORD": "pw"}
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.bin.sig").is_file()
    r = _cli("keys", "generate", str(tmp_path / "enc"))
    assert r.returncode == 2
    r = _cli("sign", str(tmp_path / "nope"), "--key", str(tmp_path / "enc.key"))
    assert r.returncode == 2
