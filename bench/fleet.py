"""Fleet start-up: N gate *processes* released together, each gating the same model.

The stack, all on 127.0.0.1, all started here and always stopped:

* PostgreSQL (the suite's, or a throwaway cluster), one database;
* Debian ``docker-registry`` holding the model blobs;
* Registry replica 0 (set-up only: publish, approve, alias; never behind nginx) and
  replicas 1 and 2, each its own empty ``data_dir``, ``blob_store = "oci://..."``;
* Debian ``nginx`` with the stream module in TLS passthrough (mTLS still ends at the
  Registry): one port round-robins replicas 1 and 2, one fronts docker-registry. Its
  access logs count the bytes each served (``$bytes_sent`` per session, on the wire).

``--via registry`` (default until ``trustload publish --oci`` exists): the model is
published through the Registry, whose blob store is the OCI registry; gates download
through the Registry, which streams from the OCI registry. ``--via oci``: the model is
pushed to the OCI registry by ``trustload publish PATH --oci HOST/REPO`` and gates
fetch its bytes from there, the Registry only governing. The one switch is
:func:`publish_command` (and the gates' ``[[oci.registries]]``).

Each gate process imports trustload, loads its own config (own cache, state, audit log),
says ``ready`` and blocks on a shared pipe; closing that pipe releases all at once. A
gate's latency is from that release to its decision. The baseline is one ``curl`` of
the model blob straight from docker-registry in the same run (median of 3).

Prints details, then exactly one final line:
``fleet: P/N permit; p50 X s, p99 Y s; registry served R MiB, oci served O MiB (model bytes M MiB)``
(M: the model's size; the fleet needed N x M). Usage:
``python bench/fleet.py [--gates 200] [--size-mib 64] [--via oci|registry]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.registry import DevEnv, RunningRegistry  # noqa: E402

READY_TIMEOUT = 600.0
RUN_TIMEOUT = 900.0
STEP_TIMEOUT = 120.0
MIB = 1024 * 1024
BLOB_REPO = "trustload/blobs"
MODEL_REPO = "models/fleet"
NGINX_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
MODEL = "fleet"


# --------------------------------------------------------------------------- worker


def worker(config: str, ref: str, go_fd: int) -> None:
    """One gate process: ready, wait for the release, gate, print one JSON line."""
    from trustload.config import load_client_config
    from trustload.gate import run_gate

    cfg = load_client_config(config)
    print("ready", flush=True)
    os.read(go_fd, 1)  # EOF when the parent closes the pipe: everyone at once
    woke = time.time()
    try:
        result = run_gate(cfg, ref)
        doc = {"permitted": result.decision.permitted}
        doc["reasons"] = [str(r) for r in result.decision.reasons]
    except Exception as exc:  # reported, not hidden: the bench counts it as a failure
        doc = {"permitted": False, "reasons": [f"{type(exc).__name__}: {exc}"[:300]]}
    doc.update(woke=woke, end=time.time())
    print(json.dumps(doc), flush=True)


# --------------------------------------------------------------------------- helpers


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port} within {STEP_TIMEOUT:g} s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def oci_block(host: str, ca: Path) -> str:
    return f'\n[[oci.registries]]\nhost = "{host}"\nca = "{ca}"\nread_timeout = 120.0\n'


def publish_oci_available() -> bool:
    """Whether ``trustload publish`` has ``--oci`` (INTERFACE.md) in this tree."""
    out = subprocess.run(
        [sys.executable, "-m", "trustload.cli.main", "publish", "--help"],
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
        env=dict(os.environ, COLUMNS="200"),
    )
    return "--oci" in out.stdout


# --------------------------------------------------------------------------- nginx


@dataclasses.dataclass
class Front:
    """nginx in TLS passthrough: ``registry_port`` -> replicas, ``oci_port`` -> OCI."""

    root: Path
    registry_port: int
    oci_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def registry_log(self) -> Path:
        return self.root / "registry-access.log"

    @property
    def oci_log(self) -> Path:
        return self.root / "oci-access.log"

    def config(self, replicas: list[str], oci_host: str) -> str:
        servers = "".join(f"    server {u.removeprefix('https://')};\n" for u in replicas)
        fmt = "'$msec $server_port $upstream_addr $bytes_sent $bytes_received $session_time'"
        return (
            f"load_module {NGINX_MODULE};\n"
            f"worker_processes 2;\npid {self.root}/nginx.pid;\n"
            f"error_log {self.root}/error.log warn;\n"
            "events { worker_connections 16384; }\n"
            "stream {\n"
            f"  log_format bytes {fmt};\n"
            "  proxy_connect_timeout 5s;\n  proxy_timeout 120s;\n"
            f"  upstream registry {{\n{servers}  }}\n"
            f"  server {{ listen 127.0.0.1:{self.registry_port} backlog=4096; "
            f"proxy_pass registry; access_log {self.registry_log} bytes; }}\n"
            f"  server {{ listen 127.0.0.1:{self.oci_port} backlog=4096; "
            f"proxy_pass {oci_host}; access_log {self.oci_log} bytes; }}\n"
            "}\n"
        )

    @contextlib.contextmanager
    def run(self, replicas: list[str], oci_host: str) -> Iterator[Front]:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists() or not NGINX_MODULE.exists():
            raise SystemExit("nginx missing: apt-get install -y nginx libnginx-mod-stream")
        conf = self.root / "nginx.conf"
        self.root.mkdir(parents=True, exist_ok=True)
        conf.write_text(self.config(replicas, oci_host))
        cmd = [nginx, "-e", str(self.root / "stderr.log"), "-p", str(self.root), "-c", str(conf)]
        with (self.root / "nginx.out").open("wb") as out:
            self.proc = subprocess.Popen([*cmd, "-g", "daemon off;"], stdout=out, stderr=out)
        try:
            wait_port(self.registry_port, self.proc, "nginx")
            wait_port(self.oci_port, self.proc, "nginx")
            yield self
        finally:
            self.stop()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGQUIT, grace=20.0)  # graceful: sessions get logged


def served_bytes(log: Path, offset: int) -> tuple[int, int]:
    """Sum of ``$bytes_sent`` (and the session count) logged after ``offset``."""
    total = sessions = 0
    with log.open("rb") as fh:
        fh.seek(offset)
        for line in fh.read().decode().splitlines():
            fields = line.split()
            if len(fields) == 6:
                total += int(fields[3])
                sessions += 1
    return total, sessions


def log_size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


# --------------------------------------------------------------------------- the stack


@dataclasses.dataclass
class Stack:
    tmp: Path
    via: str
    env: DevEnv  # replica 0's files (the set-up identity)
    gate_env_root: Path
    oci_direct: str
    oci_front: str
    oci_ca: Path
    front: Front
    replicas: list[RunningRegistry]
    blob_hex: str = ""

    def stop_front_and_replicas(self) -> None:
        """Replicas first (their pooled connections to the OCI front close), then nginx,
        gracefully, so every session is logged with its byte count."""
        for r in self.replicas:
            r.stop()
        self.front.stop()


def gate_configs(stack: Stack, n: int, root: Path) -> list[Path]:
    """One gate.toml per gate (own cache, state, audit), next to ``root``'s gate.toml
    (relative paths to PKI, issuer, policy and key resolve) and its Registry URL."""
    base = (root / "gate.toml").read_text()
    for key in ("cache_dir", "state_dir", "audit_log"):
        assert f'\n{key} = "' in base, key
    extra = oci_block(stack.oci_front, stack.oci_ca) if stack.via == "oci" else ""
    paths = []
    for i in range(n):
        text = base
        for key, leaf in (("cache_dir", "cache"), ("state_dir", "state"), ("audit_log", "a.jsonl")):
            start = text.index(f"\n{key} = ")
            end = text.index("\n", start + 1)
            text = text[:start] + f'\n{key} = "gates/{i}/{leaf}"' + text[end:]
        path = root / f"gate-{i}.toml"
        path.write_text(text + extra)
        paths.append(path)
    return paths


def publish_command(stack: Stack, model: Path, version: str) -> list[str]:
    """The one place the two data paths differ on the publishing side."""
    env = stack.env
    cmd = [sys.executable, "-m", "trustload.cli.main", "publish", str(model)]
    cmd += ["--name", MODEL, "--version", version, "--config", str(env.admin_config)]
    cmd += ["--key", str(env.signing_key), "--git-sha", "1" * 40]
    cmd += ["--container-digest", "sha256:" + "c" * 64, "--dataset-snapshot", "ds-bench"]
    if stack.via == "oci":
        cmd += ["--oci", f"{stack.oci_front}/{MODEL_REPO}"]
    return cmd


def publish(stack: Stack, model: Path) -> None:
    from trustload.client.api import RegistryClient
    from trustload.config import load_client_config

    env = stack.env
    if stack.via == "oci":
        with env.admin_config.open("a") as fh:
            fh.write(oci_block(stack.oci_front, stack.oci_ca))
    out = subprocess.run(
        publish_command(stack, model, "1"), capture_output=True, text=True, timeout=600, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"publish failed ({out.returncode}): {out.stderr[-2000:]}")
    admin_cfg = load_client_config(env.admin_config)
    with RegistryClient(admin_cfg.registry) as admin:
        admin.set_stage(MODEL, "1", "Approved")
        admin.set_alias(MODEL, "production", "1")


def curl_seconds(stack: Stack, runs: int = 3) -> float:
    """One download of the model blob from docker-registry itself (no hashing)."""
    repo = MODEL_REPO if stack.via == "oci" else BLOB_REPO
    url = f"https://{stack.oci_direct}/v2/{repo}/blobs/sha256:{stack.blob_hex}"
    out = stack.tmp / "curl.bin"
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            ["curl", "-sSf", "--cacert", str(stack.oci_ca), "-o", str(out), url],
            check=True,
            timeout=STEP_TIMEOUT,
        )
        times.append(time.perf_counter() - start)
    size = out.stat().st_size
    out.unlink()
    if size == 0:
        raise SystemExit("curl fetched nothing")
    return statistics.median(times)


def curl_fleet_seconds(stack: Stack, n: int) -> tuple[float, float]:
    """p50 and p99 of ``n`` curl processes started together, each downloading the model
    blob from docker-registry to its own file: the same fan-out as the fleet, with no
    gate in it (no hashing, no fsync, no Registry), so the ratio shows what the gate adds
    when the machine, not the gate, is the bottleneck."""
    repo = MODEL_REPO if stack.via == "oci" else BLOB_REPO
    url = f"https://{stack.oci_direct}/v2/{repo}/blobs/sha256:{stack.blob_hex}"
    outs = [stack.tmp / f"curl-fleet-{i}.bin" for i in range(n)]
    argv = ["curl", "-sSf", "--cacert", str(stack.oci_ca), "-w", "%{time_total}", "-o"]
    procs = [subprocess.Popen([*argv, str(o), url], stdout=subprocess.PIPE) for o in outs]
    times = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=RUN_TIMEOUT)
            if proc.returncode != 0:
                raise SystemExit(f"a fleet curl failed ({proc.returncode})")
            times.append(float(out.decode()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for o in outs:
            o.unlink(missing_ok=True)
    return statistics.median(times), percentile(times, 0.99)


# --------------------------------------------------------------------------- the fleet


@dataclasses.dataclass
class Outcome:
    permitted: int
    latencies: list[float]
    failures: list[str]
    release_wall: float
    ready_seconds: float


def _read_lines(procs: list[subprocess.Popen[bytes]], want: str, deadline: float) -> list[str]:
    """The first line each process prints that ``want`` accepts ('' = any line)."""
    sel = selectors.DefaultSelector()
    buffers: dict[int, bytes] = {}
    lines: dict[int, str] = {}
    for i, p in enumerate(procs):
        assert p.stdout is not None
        sel.register(p.stdout, selectors.EVENT_READ, i)
        buffers[i] = b""
    try:
        while len(lines) < len(procs):
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"{len(procs) - len(lines)} gates never answered ({want!r})")
            for key, _ in sel.select(min(left, 1.0)):
                i = key.data
                chunk = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                buffers[i] += chunk
                if b"\n" in buffers[i] or not chunk:
                    lines[i] = buffers[i].split(b"\n", 1)[0].decode(errors="replace")
                    buffers[i] = buffers[i].split(b"\n", 1)[1] if b"\n" in buffers[i] else b""
                    sel.unregister(key.fileobj)
    finally:
        sel.close()
    return [lines[i] for i in range(len(procs))]


def run_fleet(stack: Stack, configs: list[Path], ref: str) -> Outcome:
    go_read, go_write = os.pipe()
    procs: list[subprocess.Popen[bytes]] = []
    logs = stack.tmp / "gate-logs"
    logs.mkdir(exist_ok=True)
    started = time.monotonic()
    try:
        for i, cfg in enumerate(configs):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(cfg)]
            cmd += ["--ref", ref, "--go-fd", str(go_read)]
            with (logs / f"{i}.err").open("wb") as err:
                procs.append(
                    subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, pass_fds=(go_read,))
                )
        os.close(go_read)
        go_read = -1
        ready = _read_lines(procs, "ready", time.monotonic() + READY_TIMEOUT)
        if any(line != "ready" for line in ready):
            raise SystemExit(f"gates failed to start: {sorted(set(ready))[:3]}")
        ready_seconds = time.monotonic() - started
        release = time.time()
        os.close(go_write)  # the barrier: every gate reads EOF now
        go_write = -1
        answers = _read_lines(procs, "", time.monotonic() + RUN_TIMEOUT)
        for p in procs:
            p.wait(STEP_TIMEOUT)
    finally:
        for fd in (go_read, go_write):
            if fd >= 0:
                os.close(fd)
        for p in procs:
            stop(p, signal.SIGKILL, grace=5.0)
            if p.stdout is not None:
                p.stdout.close()
    docs = [
        json.loads(a) if a.startswith("{") else {"permitted": False, "reasons": [a]}
        for a in answers
    ]
    latencies = [d["end"] - release for d in docs if "end" in d]
    failures = [",".join(d["reasons"]) for d in docs if not d["permitted"]]
    return Outcome(len(docs) - len(failures), latencies, failures, release, ready_seconds)


@contextlib.contextmanager
def build_stack(tmp: Path, via: str, pg: str) -> Iterator[Stack]:
    """PostgreSQL database, docker-registry, replicas 0-2, nginx; all stopped after."""
    from tests.client.pki import CA
    from tests.support.ocireg import oci_registry
    from tests.support.registry import make_test_env, start_registry
    from tests.support.replicas import replica_env, shared_database, use_oci_blob_store

    with contextlib.ExitStack() as stack:
        oci = stack.enter_context(oci_registry(tmp / "oci", CA(tmp / "oci-pki", "fleet-ca")))
        env = make_test_env(tmp / "env")
        stack.enter_context(shared_database(env, pg))
        use_oci_blob_store(env, oci, BLOB_REPO, read_timeout=120.0)
        front = Front(tmp / "nginx", free_port(), free_port())
        oci_front = f"127.0.0.1:{front.oci_port}"
        replicas = [replica_env(env, n) for n in (1, 2)]
        for twin in replicas:  # replicas 1 and 2 reach the OCI registry through nginx
            toml = twin.registry_config
            toml.write_text(toml.read_text().replace(oci.host, oci_front))
        stack.enter_context(start_registry(env))
        running = [stack.enter_context(start_registry(twin)) for twin in replicas]
        stack.enter_context(front.run([r.url for r in running], oci.host))
        from trustload.devenv import set_registry_url

        set_registry_url(replicas[0].root, f"https://127.0.0.1:{front.registry_port}")
        yield Stack(tmp, via, env, replicas[0].root, oci.host, oci_front, oci.ca, front, running)


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gates", type=int, default=200)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--via", choices=("oci", "registry"), default=None)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--ref", default=f"{MODEL}@production", help=argparse.SUPPRESS)
    ap.add_argument("--go-fd", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is None and not 1 <= args.gates <= 500:
        raise SystemExit("--gates must be in 1..500")
    if args.worker is None and not 1 <= args.size_mib <= 4096:
        raise SystemExit("--size-mib must be in 1..4096")
    return args


def choose_via(asked: str | None) -> str:
    available = publish_oci_available()
    if asked == "oci" and not available:
        raise SystemExit("--via oci needs `trustload publish PATH --oci HOST/REPO` (not here)")
    return asked or ("oci" if available else "registry")


def report(args: argparse.Namespace, via: str, out: Outcome, stack: Stack, probe: float,
           curl: float, curls: tuple[float, float], registry: tuple[int, int],
           oci: tuple[int, int]) -> None:  # fmt: skip
    n = args.gates
    p50, p99 = statistics.median(out.latencies), percentile(out.latencies, 0.99)
    print(
        f"gates            : {n} processes, released together ({out.ready_seconds:.1f} s to ready)"
    )
    print(f"data path        : --via {via}; 2 Registry replicas behind nginx (stream passthrough)")
    print(f"one gate alone   : {probe:.2f} s (before the fleet, replica 0 without nginx)")
    print(
        f"curl (baseline)  : {curl:.3f} s for one {args.size_mib} MiB download from docker-registry"
    )
    print(f"p99 / curl       : {p99 / curl:.1f} x  (p50 / curl {p50 / curl:.1f} x)")
    print(
        f"{n} curls at once : p50 {curls[0]:.2f} s, p99 {curls[1]:.2f} s "
        f"(fleet p99 / curl-fleet p99 {p99 / curls[1]:.1f} x)"
    )
    print(f"registry sessions: {registry[1]}, oci sessions: {oci[1]} (nginx access logs)")
    print(f"fleet needed     : {n * args.size_mib} MiB of model bytes in all")
    if out.failures:
        print(f"denied           : {sorted(set(out.failures))[:5]}")
    print(
        f"fleet: {out.permitted}/{n} permit; p50 {p50:.2f} s, p99 {p99:.2f} s; "
        f"registry served {registry[0] / MIB:.1f} MiB, oci served {oci[0] / MIB:.1f} MiB "
        f"(model bytes {args.size_mib} MiB)"
    )


def main() -> None:
    args = parse_args()
    if args.worker is not None:
        worker(args.worker, args.ref, args.go_fd)
        return
    via = choose_via(args.via)
    from tests.support.replicas import postgres_url

    tmp = Path(tempfile.mkdtemp(prefix="tl-fleet-"))
    try:
        with postgres_url() as pg, build_stack(tmp, via, pg) as stack:
            model = tmp / "model.onnx"
            with model.open("wb") as fh:
                for _ in range(args.size_mib):
                    fh.write(os.urandom(MIB))
            publish(stack, model)
            import hashlib

            with model.open("rb") as fh:
                stack.blob_hex = hashlib.file_digest(fh, "sha256").hexdigest()
            # The probe goes to replica 0 directly (its OCI path is direct too): nothing
            # it moves is in the nginx logs, not even in a pooled connection.
            probe = run_fleet(stack, gate_configs(stack, 1, stack.env.root), args.ref)
            if probe.permitted != 1:
                raise SystemExit(f"a single gate is denied: {probe.failures}")
            curl = curl_seconds(stack)
            curls = curl_fleet_seconds(stack, args.gates)
            offsets = log_size(stack.front.registry_log), log_size(stack.front.oci_log)
            configs = gate_configs(stack, args.gates, stack.gate_env_root)
            outcome = run_fleet(stack, configs, args.ref)
            stack.stop_front_and_replicas()
            registry = served_bytes(stack.front.registry_log, offsets[0])
            oci = served_bytes(stack.front.oci_log, offsets[1])
            report(
                args, via, outcome, stack, max(probe.latencies), curl, curls, registry, oci
            )
            if outcome.permitted != args.gates:
                raise SystemExit(1)  # the line above says how many; a partial fleet fails
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
