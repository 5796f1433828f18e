"""A real `trustload serve` process against a real Registry, for the serve tests and demo-like
flows: publish genuinely signed ONNX models, govern them, start/stop the runtime."""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.support.registry import RunningRegistry, make_test_env, publish_bytes, start_registry

from .onnx_models import linear_scorer

GIT_SHA = "0" * 40
CONTAINER = "sha256:" + "cd" * 32
DATASET = "ds-2026-01"


def publish_signed(
    reg: RunningRegistry,
    name: str,
    version: str,
    weights: list[float],
    bias: float,
    *,
    approve: bool = True,
    alias: str | None = "production",
    data: bytes | None = None,
    fmt: str = "onnx",
    filename: str = "model.onnx",
) -> dict[str, Any]:
    """Sign + attest a real model with the dev signing key, publish it, approve, alias it."""
    from trustload.digests import ModelLayout
    from trustload.policy import load_bundle
    from trustload.signing import attest_bytes, sign_layout_bundle

    env = reg.env
    work = env.root / f"work-{name}-{version}-{uuid.uuid4().hex[:6]}"
    work.mkdir()
    path = work / filename
    path.write_bytes(data if data is not None else linear_scorer(weights, bias))
    raw = path.read_bytes()
    layout = ModelLayout.from_path(path)
    bundle = sign_layout_bundle(layout, env.signing_key)
    import hashlib

    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    att = attest_bytes(
        subject_name=filename,
        artifact_digest=digest,
        key_path=env.signing_key,
        git_sha=GIT_SHA,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
        not_after=datetime(2099, 1, 1, tzinfo=UTC),  # the card's revalidate_by
    )
    card = {
        "tenant_id": "A",
        "domain": "credit",
        "purpose": {"allowed": ["credit_scoring"]},
        "revalidate_by": "2099-01-01T00:00:00Z",
        "format": fmt,
    }
    with reg.admin() as admin:
        res = publish_bytes(
            admin,
            name,
            version,
            raw,
            signature=bundle,
            attestation=att,
            card=card,
            format=fmt,
            files=[{"path": filename, "sha256": digest[7:], "size": len(raw)}],
            policy_digest=load_bundle(env.policy_dir).digest,
            git_sha=GIT_SHA,
            container_digest=CONTAINER,
            dataset_snapshot=DATASET,
        )
        assert res.status_code == 201, res.text
        if approve:
            stage(reg, name, version, "Approved")
        if alias:
            set_alias(reg, name, alias, version)
    return {"digest": digest, "path": path}


def stage(reg: RunningRegistry, name: str, version: str, value: str) -> None:
    with reg.admin() as admin:
        r = admin.put(f"/v1/models/{name}/versions/{version}/stage", json={"stage": value})
        assert r.status_code == 200, r.text


def set_alias(reg: RunningRegistry, name: str, alias: str, version: str) -> int:
    with reg.admin() as admin:
        r = admin.put(f"/v1/models/{name}/aliases/{alias}", json={"version": version})
        assert r.status_code == 200, r.text
        return int(r.json()["revision"])


def revoke(reg: RunningRegistry, name: str, version: str, reason: str = "test") -> None:
    with reg.admin() as admin:
        r = admin.post(f"/v1/models/{name}/versions/{version}/revoke", json={"reason": reason})
        assert r.status_code == 200, r.text


def configure_gate(
    gate_toml: Path, *, refresh: float = 0.5, max_staleness: int = 300, offline_start: bool = False
) -> None:
    """Short refresh interval, any free port, and a staleness limit for the tests."""
    text = gate_toml.read_text()
    text = re.sub(r"(?m)^(max_staleness|offline_start) = .*\n", "", text)
    text = re.sub(r"(?m)^request_timeout = .*\n", "", text)
    text = re.sub(
        r"(?m)^refresh_interval = .*$",
        f"refresh_interval = {refresh}\nrequest_timeout = 2",
        text,
    )
    text = re.sub(r"(?m)^listen = .*$", 'listen = "127.0.0.1:0"', text)
    text = re.sub(
        r'(?m)^environment = "prod"$',
        f'environment = "prod"\nmax_staleness = {max_staleness}\n'
        f"offline_start = {'true' if offline_start else 'false'}",
        text,
    )
    gate_toml.write_text(text)


@dataclass
class Serving:
    proc: subprocess.Popen[bytes]
    url: str
    first_line: str
    stderr_path: Path

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def run_serve(
    gate_toml: Path, model: str, *, env: dict[str, str] | None = None, timeout: float = 60.0
) -> Serving | subprocess.CompletedProcess[bytes]:
    """Start `trustload serve`; return a Serving once it prints its URL, or the finished
    process (denied start-up) with its exit status and stderr."""
    stderr_path = gate_toml.parent / f"serve-{uuid.uuid4().hex[:8]}.stderr"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trustload.cli.main",
                "serve",
                "--config",
                str(gate_toml),
                "--model",
                model,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, **(env or {})},
        )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in buf:
            if proc.poll() is not None and not sel.select(timeout=0):
                proc.wait()
                return subprocess.CompletedProcess(
                    proc.args, proc.returncode, buf, stderr_path.read_bytes()
                )
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise AssertionError("serve did not start:\n" + stderr_path.read_text())
            if sel.select(timeout=0.2):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk and proc.poll() is not None:
                    proc.wait()
                    return subprocess.CompletedProcess(
                        proc.args, proc.returncode, buf, stderr_path.read_bytes()
                    )
                buf += chunk
    finally:
        sel.close()
    line = buf.split(b"\n", 1)[0].decode()
    m = re.search(r"on (http://\S+)", line)
    assert m, line
    return Serving(proc, m.group(1), line, stderr_path)


def wait_until(pred: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll with a bounded timeout (no fixed sleeps in the tests' logic)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def audit_events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def infer(client: httpx.Client, name: str, rows: list[list[float]]) -> httpx.Response:
    flat = [v for row in rows for v in row]
    body = {
        "inputs": [
            {"name": "x", "shape": [len(rows), len(rows[0])], "datatype": "FP32", "data": flat}
        ]
    }
    return client.post(f"/v2/models/{name}/infer", json=body)


def quarantine(reg: RunningRegistry, name: str, version: str, reason: str = "test") -> None:
    with reg.admin() as admin:
        r = admin.post(f"/v1/models/{name}/versions/{version}/quarantine", json={"reason": reason})
        assert r.status_code == 200, r.text


def release(reg: RunningRegistry, name: str, version: str) -> None:
    with reg.admin() as admin:
        r = admin.post(f"/v1/models/{name}/versions/{version}/release", json={})
        assert r.status_code == 200, r.text


@contextlib.contextmanager
def serving_one_model(
    root: Path,
    name: str = "risk",
    weights: tuple[float, ...] = (1.0, -1.0),
    data: bytes | None = None,
) -> Iterator[Serving]:
    """A fresh Registry with one signed, approved ONNX model (version 1, alias production:
    the linear scorer over ``weights``, or ``data``) and a `trustload serve` process
    serving it; both stopped on exit."""
    env = make_test_env(root / "env")
    try:
        with start_registry(env) as reg:
            publish_signed(reg, name, "1", list(weights), 0.0, data=data)
            configure_gate(env.gate_config)
            started = run_serve(env.gate_config, f"{name}@production")
            assert isinstance(started, Serving), started
            try:
                yield started
            finally:
                started.stop()
    finally:
        env.close()
