"""``make demo`` / ``python -m trustload.demo``: the whole story in under a minute.

In a temporary directory: a dev environment, a real Registry over mTLS + OIDC, a
small real ONNX model (a linear credit scorer built right now), published signed and
attested, approved and aliased ``production``; ``trustload serve`` gates it and
serves one inference over the Open Inference Protocol; then a tampered blob is denied
by a fresh gate, and a revoked version is rolled back while serving. Finally the
audit log's hash chain is verified. Every process it starts is stopped before it
exits, whatever happens. Set ``TRUSTLOAD_DEMO_DIR`` to keep the environment there.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

MODEL = "risk-default"
GIT_SHA = "3f2a9c1e5b7d4f6a8c0e2b4d6f8a1c3e5b7d9f0a"
CONTAINER = "sha256:" + "5e" * 32
DATASET = "credit-2026-10-snapshot"
FEATURES = ["income_k", "debt_ratio", "late_payments"]
START_TIMEOUT = 30.0


def linear_scorer(weights: list[float], bias: float) -> bytes:
    """A tiny real ONNX model: ``score = sigmoid(x @ w + b)`` over float32 ``x[N, len(w)]``."""
    import onnx
    from onnx import TensorProto, helper

    n = len(weights)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["score"]),
        ],
        "linear_scorer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        initializer=[
            helper.make_tensor("w", TensorProto.FLOAT, [n, 1], weights),
            helper.make_tensor("b", TensorProto.FLOAT, [1], [bias]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


class Demo:
    def __init__(self, root: Path, console: Console) -> None:
        self.root = root
        self.console = console
        self.env = root / "env"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.t0 = time.monotonic()
        self.stack = ExitStack()
        self.container = CONTAINER  # the serving image's digest, once one is pushed
        self.image_ref: str | None = None
        self.oci_host: str | None = None  # the dev OCI registry, when docker-registry runs

    # ---------------------------------------------------------------- helpers
    def step(self, title: str, text: str = "") -> None:
        from rich.panel import Panel

        elapsed = time.monotonic() - self.t0
        self.console.print(
            Panel(text or "", title=f"[bold]{title}[/]", subtitle=f"{elapsed:4.1f}s", expand=True)
        )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        shown = "trustload " + " ".join(
            a if not a.startswith(str(self.root)) else os.path.relpath(a, self.root) for a in args
        )
        self.console.print(f"[dim]$ {shown}[/]")
        res = subprocess.run(
            [sys.executable, "-m", "trustload.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
        )
        if check and res.returncode != 0:
            raise RuntimeError(f"{shown} failed ({res.returncode}):\n{res.stderr}")
        return res

    def spawn(
        self, *args: str, env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], str]:
        """Start a long-running command; return it and the first line it prints."""
        log = (self.root / f"{args[0]}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "trustload.cli.main", *args],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=self.root,
            env={**os.environ, **(env or {})},
        )
        log.close()
        self.procs.append(proc)
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while b"\n" not in buf:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(args[:2])} did not start (see {log.name})")
                if sel.select(timeout=0.2):
                    buf += os.read(proc.stdout.fileno(), 4096)
        finally:
            sel.close()
        return proc, buf.split(b"\n", 1)[0].decode().strip()

    def stop_all(self) -> None:
        self.stack.close()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
        self.procs.clear()

    def wait_for(self, what: str, pred: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def audit(self) -> list[dict[str, Any]]:
        path = self.env / "audit.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def decision_table(self, docs: list[dict[str, Any]], title: str) -> None:
        from rich.table import Table

        table = Table(title=title, show_lines=False, expand=True)
        for col in ("event", "decision", "version", "reasons"):
            table.add_column(col, no_wrap=True)
        table.add_column("detail", overflow="fold", ratio=1)
        table.add_column("ms", justify="right", no_wrap=True)
        for d in docs:
            decision = d.get("decision") or ""
            color = {"permit": "green", "deny": "red"}.get(decision, "cyan")
            failing = [c for c in d.get("checks") or [] if not c.get("ok")]
            detail = "; ".join(f"{c['name']}: {c['detail']}" for c in failing)[:160]
            if not detail:
                detail = str(d.get("detail") or d.get("previous_version") or "")
                if d.get("previous_version"):
                    detail = f"swapped from v{d['previous_version']}"
            table.add_row(
                str(d.get("event")),
                f"[{color}]{decision or '-'}[/]",
                str(d.get("version") or "-"),
                ", ".join(d.get("reasons") or []) or "-",
                detail or "-",
                f"{d['latency_ms']:.0f}" if isinstance(d.get("latency_ms"), int | float) else "",
            )
        self.console.print(table)

    # ---------------------------------------------------------------- the story
    def publish(self, version: str, weights: list[float], bias: float) -> str:
        model_dir = self.root / "models" / version
        model_dir.mkdir(parents=True)
        path = model_dir / "model.onnx"
        path.write_bytes(linear_scorer(weights, bias))
        card = self.root / "card.yaml"
        if not card.exists():
            card.write_text(
                "tenant_id: A\ndomain: credit\npurpose:\n  allowed: [credit_scoring]\n"
                "revalidate_by: 2099-06-30T00:00:00Z\nformat: onnx\n"
            )
        res = self.cli(
            "publish", str(path), "--name", MODEL, "--version", version,
            "--config", str(self.env / "admin.toml"), "--key", str(self.env / "signing.key"),
            "--git-sha", GIT_SHA, "--container-digest", self.container,
            "--dataset-snapshot", DATASET, "--card", str(card), "--json",
        )  # fmt: skip
        record = json.loads(res.stdout)
        self.cli(
            "registry",
            "stage",
            f"{MODEL}@{version}",
            "Approved",
            "--config",
            str(self.env / "admin.toml"),
        )
        self.cli(
            "registry",
            "alias",
            MODEL,
            "production",
            version,
            "--config",
            str(self.env / "admin.toml"),
        )
        return str(record["artifact_digest"])

    def serving_version(self, url: str) -> str | None:
        import httpx

        try:
            r = httpx.get(f"{url}/v2/models/{MODEL}", timeout=5)
        except httpx.HTTPError:
            return None
        return str(r.json()["versions"][0]) if r.status_code == 200 else None

    def infer(self, url: str, rows: list[list[float]]) -> dict[str, Any]:
        import httpx

        body = {
            "id": "demo-1",
            "inputs": [
                {"name": "x", "shape": [len(rows), len(FEATURES)], "datatype": "FP32",
                 "data": [v for r in rows for v in r]}
            ],
        }  # fmt: skip
        r = httpx.post(f"{url}/v2/models/{MODEL}/infer", json=body, timeout=10)
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc

    def serving_image(self) -> None:
        """R2.5: push a stand-in serving image to a real OCI registry, cosign-sign it, and
        make the gate verify it on every decision ([gate.image])."""
        from trustload.devoci import (
            dev_oci_registry,
            push_serving_image,
            registries_toml,
            registry_binary,
        )

        binary = registry_binary(lambda line: self.console.print(f"[yellow]{line}[/]"))
        if binary is None:
            return
        host = self.stack.enter_context(dev_oci_registry(binary, self.env))
        self.oci_host = host
        for name in ("gate.toml", "admin.toml"):
            path = self.env / name
            path.write_text(path.read_text() + registries_toml(host))
        digest = push_serving_image(self.env / "admin.toml", host, "serving")
        self.image_ref = f"{host}/serving@{digest}"
        self.cli("keys", "generate", str(self.env / "image-signing"))
        self.cli(
            "sign-image", self.image_ref, "--key", str(self.env / "image-signing.key"),
            "--config", str(self.env / "admin.toml"),
        )  # fmt: skip
        res = self.cli(
            "verify-image", self.image_ref, "--key", str(self.env / "signing.pub"),
            "--config", str(self.env / "gate.toml"), "--json", check=False,
        )  # fmt: skip
        wrong = json.loads(res.stdout)
        gate = self.env / "gate.toml"
        gate.write_text(
            gate.read_text() + f'\n[gate.image]\nreference = "{self.image_ref}"\n'
            'keys = ["image-signing.pub"]\n'
        )
        self.container = digest
        self.step(
            "2b. serving image signed (cosign layout, real OCI registry)",
            f"{self.image_ref}\nsigned by image-signing.key under sha256-<hex>.sig; "
            "the gate now verifies it on every decision (\\[gate.image])\n"
            f"verify-image with the model key instead: exit {res.returncode}, "
            f"{', '.join(wrong['reasons'])}",
        )

    def oci_model(self, version: str) -> None:
        """Issue 10: the same model published through the OCI registry as a ModelPack
        artifact (cosign .sig/.att beside it), recorded with artifact_uri, then gated."""
        if self.oci_host is None:
            return
        name = f"{MODEL}-oci"
        res = self.cli(
            "publish", str(self.root / "models" / version), "--name", name, "--version", "1",
            "--config", str(self.env / "admin.toml"), "--key", str(self.env / "signing.key"),
            "--oci", f"{self.oci_host}/models/{MODEL}",
            "--git-sha", GIT_SHA, "--container-digest", self.container,
            "--dataset-snapshot", DATASET, "--card", str(self.root / "card.yaml"), "--json",
        )  # fmt: skip
        record = json.loads(res.stdout)
        admin = ("--config", str(self.env / "admin.toml"))
        self.cli("registry", "stage", f"{name}@1", "Approved", *admin)
        self.cli("registry", "alias", name, "production", "1", *admin)
        # A gate of its own (cache, state, audit), so the serving story below is unchanged.
        gate = self.env / "oci-gate.toml"
        gate.write_text(
            (self.env / "gate.toml")
            .read_text()
            .replace('cache_dir = "cache"', 'cache_dir = "oci-cache"')
            .replace('state_dir = "state"', 'state_dir = "oci-state"')
            .replace('audit_log = "audit.jsonl"', 'audit_log = "oci-audit.jsonl"')
        )
        res = self.cli("verify", f"{name}@production", "--config", str(gate), "--json", check=False)
        self.step(
            "3b. the same model published through the OCI registry",
            f"{record['artifact_uri']}\nModelPack layers, cosign .sig + SLSA .att; the Registry "
            "records governance only",
        )
        self.decision_table([json.loads(res.stdout)], f"gate over OCI: exit {res.returncode}")

    def run(self) -> None:
        from rich.table import Table

        self.step(
            "1. dev environment",
            "private CA, mTLS identities, dev OIDC issuer, signing key, policy",
        )
        self.cli("dev-env", str(self.env))
        gate = self.env / "gate.toml"
        text = gate.read_text()
        text = re.sub(r"(?m)^refresh_interval = .*$", "refresh_interval = 1", text)
        text = re.sub(r"(?m)^listen = .*$", 'listen = "127.0.0.1:0"', text)
        gate.write_text(text)

        _, url_line = self.spawn("registry", "serve", "--config", str(self.env / "registry.toml"))
        self.step(
            "2. Registry up",
            f"{url_line}\n(mTLS required, OIDC bearer tokens, SQLite + blob store)",
        )
        self.serving_image()

        d1 = self.publish("1", [-0.04, 2.5, 0.9], -0.3)
        self.step(
            "3. model v1 published",
            f"a real ONNX linear scorer over {FEATURES}\nsigned (OpenSSF model signing) + "
            f"SLSA attestation; stage Approved; alias production -> 1\nartifact {d1}",
        )
        self.oci_model("1")

        serve, line = self.spawn("serve", "--config", str(gate), "--model", f"{MODEL}@production")
        url = line.rsplit(" on ", 1)[1].split()[0]
        self.decision_table(self.audit(), "start-up gate decision")
        for check in self.audit()[0].get("checks") or []:
            if check["name"] == "image_signature":
                self.console.print(f"[green]ok[/] image_signature: {check['detail']}")
        rows = [[85.0, 0.2, 0.0], [32.0, 0.65, 3.0]]
        out = self.infer(url, rows)
        table = Table(title=f"4. inference via OIP v2 ({url}) -> {MODEL} v{out['model_version']}")
        for col in (*FEATURES, "risk score"):
            table.add_column(col)
        for row, score in zip(rows, out["outputs"][0]["data"], strict=True):
            table.add_row(*(f"{v:g}" for v in row), f"{score:.3f}")
        self.console.print(table)

        blob = self.env / "registry-data" / "blobs" / "sha256" / d1.removeprefix("sha256:")
        original = blob.read_bytes()
        data = bytearray(original)
        data[len(data) // 2] ^= 0x01
        blob.write_bytes(bytes(data))
        fresh = self.env / "fresh-gate.toml"
        fresh.write_text(
            gate.read_text()
            .replace('cache_dir = "cache"', 'cache_dir = "fresh-cache"')
            .replace('state_dir = "state"', 'state_dir = "fresh-state"')
        )
        self.step(
            "5. attack: 1 byte flipped in the Registry's blob store",
            f"{blob.name[:16]}... byte {len(data) // 2}",
        )
        res = self.cli(
            "verify", f"{MODEL}@production", "--config", str(fresh), "--json", check=False
        )
        denied = json.loads(res.stdout)
        self.decision_table([denied], f"a fresh gate: exit {res.returncode}, nothing loaded")
        blob.write_bytes(original)

        d2 = self.publish("2", [-0.05, 3.1, 1.2], -0.1)
        serve.send_signal(signal.SIGHUP)  # refresh now instead of waiting for the interval
        self.wait_for("v2 to be served", lambda: self.serving_version(url) == "2")
        self.step(
            "6. v2 published, alias moved",
            f"gated, loaded and warmed beside v1, swapped atomically\nartifact {d2}",
        )
        self.cli(
            "registry",
            "revoke",
            f"{MODEL}@2",
            "--reason",
            "bias found in validation",
            "--config",
            str(self.env / "admin.toml"),
        )
        serve.send_signal(signal.SIGHUP)
        self.wait_for("rollback to v1", lambda: self.serving_version(url) == "1")
        out = self.infer(url, rows[:1])
        self.step(
            "7. v2 revoked while serving",
            "withdrawn at the next refresh; v1 re-verified in full and restored "
            f"(rollback_execute); inference now from v{out['model_version']}",
        )

        import httpx

        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        keep = ("trustload_decisions_total{", "trustload_loaded_model_info{", "trustload_ready ")
        shown = [line for line in metrics.splitlines() if line.startswith(keep)]
        self.step("8. Prometheus /metrics (excerpt)", "\n".join(shown))

        self.stop_all()
        self.decision_table(self.audit(), "audit log (hash-chained JSON Lines)")
        res = self.cli("audit", "verify", str(self.env / "audit.jsonl"), check=False)
        color = "green" if res.returncode == 0 else "red"
        self.step("9. audit chain", f"[{color}]{(res.stdout or res.stderr).strip()}[/]")


@contextmanager
def _workdir() -> Iterator[Path]:
    keep = os.environ.get("TRUSTLOAD_DEMO_DIR")
    if keep:
        root = Path(keep).resolve()
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        yield root
        return
    root = Path(tempfile.mkdtemp(prefix="trustload-demo-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # logs and CI: wide enough for the decision tables
    with ExitStack() as stack:
        root = stack.enter_context(_workdir())
        demo = Demo(root, console)
        stack.callback(demo.stop_all)
        try:
            demo.run()
        except Exception as exc:
            console.print(f"[bold red]demo failed:[/] {exc}")
            for log in sorted(root.glob("*.log")):
                console.print(f"[dim]--- {log.name}[/]\n{log.read_text(errors='replace')[-3000:]}")
            return 1
        console.print(f"[bold green]demo finished in {time.monotonic() - demo.t0:.1f}s[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
