"""``trustload fetch`` against a real Registry over mTLS: the attack arena's Registry (one
per module), a gate.toml per test written the way a Kubernetes Secret would carry it
(absolute paths, a token file), and the command run as a real subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.conftest import arena  # noqa: F401  (fixture re-exported)
from tests.attacks.helpers import Arena

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Fetcher:
    arena: Arena
    root: Path  # per test: config, state, audit, termination log
    config: Path
    termination_log: Path

    @property
    def state_dir(self) -> Path:
        return self.root / "var" / "state"

    @property
    def audit_log(self) -> Path:
        return self.root / "var" / "audit.jsonl"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("TRUSTLOAD_DEBUG", None)
        env["TRUSTLOAD_CONFIG"] = str(self.config)
        env["TRUSTLOAD_TERMINATION_LOG"] = str(self.termination_log)
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "trustload.cli.main", "fetch", *args]

    def run(self, *args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
        env = kw.pop("env", None) or self.env()
        return subprocess.run(
            self.argv(*args), env=env, capture_output=True, text=True, timeout=timeout, **kw
        )

    def decision(self, proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc


def write_gate_toml(arena: Arena, root: Path, *, portable: bool = False) -> Path:  # noqa: F811
    """A gate.toml with absolute paths and a token file (production style).

    ``portable`` copies every file it names under ``root`` (world-readable), so a
    process of another UID can read them without access to the arena's private dirs.
    """
    env = arena.env
    src = {
        "ca": env.ca,
        "cert": env.root / "pki" / "gate.pem",
        "key": env.root / "pki" / "gate.key",
        "pub": env.signing_pub,
    }
    policy = env.policy_dir
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    if portable:
        for name, path in list(src.items()):
            dst = etc / path.name
            shutil.copyfile(path, dst)
            os.chmod(dst, 0o644)
            src[name] = dst
        shutil.copytree(policy, etc / "policy")
        policy = etc / "policy"
        for p in [policy, *policy.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    token = etc / "token"
    token.write_text(env.token(ttl=600))
    os.chmod(token, 0o644)
    var = root / "var"
    text = f"""[registry]
url = "{env.url}"
allowlist = ["{env.url}"]
ca = "{src["ca"]}"
client_cert = "{src["cert"]}"
client_key = "{src["key"]}"
token_file = "{token}"

[gate]
environment = "prod"
policy_dir = "{policy}"
cache_dir = "/nonexistent/trustload-cache"
state_dir = "{var / "state"}"
audit_log = "{var / "audit.jsonl"}"
trusted_keys = ["{src["pub"]}"]
"""
    path = etc / "gate.toml"
    path.write_text(text)
    os.chmod(path, 0o644)
    return path


@pytest.fixture
def fetcher(arena: Arena, tmp_path: Path) -> Fetcher:  # noqa: F811
    root = tmp_path / "f"
    root.mkdir()
    return Fetcher(arena, root, write_gate_toml(arena, root), root / "termination-log")


def tree_files(dest: Path) -> dict[str, str]:
    """Every regular file under ``dest`` -> its SHA-256 (hex)."""
    out = {}
    for p in sorted(dest.rglob("*")):
        if p.is_file():
            h = hashlib.sha256()
            with p.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            out[p.relative_to(dest).as_posix()] = h.hexdigest()
    return out
