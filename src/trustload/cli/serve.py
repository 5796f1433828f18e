"""``trustload serve --config gate.toml``: the gated serving runtime (Z6).

Start-up runs the gate; a denial with no previous healthy version to roll back to
exits 1 with the decision JSON on stderr (it is also in the audit log). Otherwise the
runtime serves the Open Inference Protocol v2 until SIGTERM / SIGINT (clean stop,
exit 0) and refreshes every ``refresh_interval`` seconds and on SIGHUP.

The first line on stdout is ``serving NAME@VERSION on http://HOST:PORT``: with
``listen = "127.0.0.1:0"`` the kernel picks the port and this line says which.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trustload.errors import UsageError
from trustload.identifiers import parse_decimal

if TYPE_CHECKING:
    import socket

    from trustload.facts import VersionRecord

BARRIER_ENV = "TRUSTLOAD_WARMUP_BARRIER"
BARRIER_TIMEOUT = 60.0


def barrier_hook(directory: Path) -> Callable[[VersionRecord], None]:
    """A warm-up hook for conformance tests (R9 chaos): pause warm-up at a file barrier.

    Warm-up of version V writes ``warming-V`` and waits (bounded) until
    ``continue-V`` exists, so a test can change the Registry at exactly that moment
    without sleeping. It only ever delays warm-up; on timeout warm-up fails (deny).
    """

    def hook(record: VersionRecord) -> None:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in record.version)
        (directory / f"warming-{safe}").write_text(record.artifact_digest)
        deadline = time.monotonic() + BARRIER_TIMEOUT
        go = directory / f"continue-{safe}"
        while not go.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"warm-up barrier for version {record.version} not released")
            time.sleep(0.01)

    return hook


def _bind(listen: str) -> socket.socket:
    from trustload.listen import tcp_listener

    host, sep, port = listen.rpartition(":")
    if not sep or parse_decimal(port) is None:
        raise UsageError(f"[serve].listen must be HOST:PORT, got {listen!r}")
    sock = tcp_listener(host.strip("[]") or "127.0.0.1", int(port))
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        config: Annotated[Path, typer.Option("--config", help="gate.toml")],
        model: Annotated[
            str | None, typer.Option("--model", help="NAME@ALIAS or NAME@VERSION ([serve].model)")
        ] = None,
        listen: Annotated[
            str | None, typer.Option("--listen", help="HOST:PORT ([serve].listen; port 0 = any)")
        ] = None,
    ) -> None:
        """Gate the model at start-up, then serve it (OIP v2) and keep re-checking it."""
        import signal
        import threading
        from contextlib import contextmanager

        import uvicorn

        from trustload.config import load_client_config
        from trustload.facts import ModelRef
        from trustload.metrics import Metrics
        from trustload.serve.app import create_app
        from trustload.serve.runtime import ServingRuntime, StartupDenied

        cfg = load_client_config(config)
        text = model or cfg.serve.model
        if not text:
            raise UsageError("no model to serve: pass --model NAME@REF or set [serve].model")
        ref = ModelRef.parse(text)
        sock = _bind(listen or cfg.serve.listen)
        barrier = os.environ.get(BARRIER_ENV)
        hook = barrier_hook(Path(barrier)) if barrier else None
        metrics = Metrics()
        runtime = ServingRuntime(cfg, ref, metrics=metrics, warmup_hook=hook)
        stop = threading.Event()
        servers: list[uvicorn.Server] = []

        # Installed before the gate runs: a SIGTERM during start-up (a long download)
        # still ends in a clean stop, never a half-started server.
        def _exit(signum: int, frame: object) -> None:
            stop.set()
            for s in servers:
                s.should_exit = True

        def _hup(signum: int, frame: object) -> None:
            runtime.request_refresh()

        signal.signal(signal.SIGTERM, _exit)
        signal.signal(signal.SIGINT, _exit)
        signal.signal(signal.SIGHUP, _hup)
        try:
            doc = runtime.start()
        except StartupDenied as denied:
            sock.close()
            sys.stderr.write(json.dumps(denied.decision, indent=2) + "\n")
            sys.stderr.flush()
            runtime.stop()
            raise SystemExit(1) from None

        class _Server(uvicorn.Server):
            @contextmanager
            def capture_signals(self):  # type: ignore[no-untyped-def]
                yield  # our handlers below: stop cleanly with exit 0, no re-raise

        app_ = create_app(runtime, cfg.serve, metrics)
        server = _Server(
            uvicorn.Config(
                app_,
                log_level="warning",
                lifespan="off",
                access_log=False,
                timeout_keep_alive=5,
                timeout_graceful_shutdown=10,
                limit_concurrency=max(4, cfg.serve.max_concurrency * 4),
                h11_max_incomplete_event_size=64 * 1024,
            )
        )
        servers.append(server)
        if stop.is_set():
            runtime.stop()
            sock.close()
            return
        active = runtime.current()
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        what = f"{active.name}@{active.version}" if active else str(ref)
        sys.stdout.write(f"serving {what} on http://{shown}:{port} ({doc.get('event')})\n")
        sys.stdout.flush()

        runtime.start_refresh_loop()
        try:
            server.run(sockets=[sock])
        finally:
            runtime.stop()
            sock.close()
