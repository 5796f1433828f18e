"""`trustload serve` usage errors exit 2 before anything runs (no Registry needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.registry import DevEnv


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustload.cli.main", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_config_is_usage_error(tmp_path: Path) -> None:
    res = _serve("--config", str(tmp_path / "nope.toml"), "--model", "m@production")
    assert res.returncode == 2 and "not found" in res.stderr


def test_no_model_is_usage_error(dev_env: DevEnv) -> None:
    res = _serve("--config", str(dev_env.gate_config))
    assert res.returncode == 2 and "no model to serve" in res.stderr


def test_bad_model_ref_and_listen_are_usage_errors(dev_env: DevEnv) -> None:
    assert _serve("--config", str(dev_env.gate_config), "--model", "nomodel").returncode == 2
    res = _serve("--config", str(dev_env.gate_config), "--model", "m@p", "--listen", "nohost")
    assert res.returncode == 2 and "HOST:PORT" in res.stderr


def test_unknown_config_key_is_refused(dev_env: DevEnv) -> None:
    text = dev_env.gate_config.read_text().replace("[serve]", "[serve]\nrefresh_intervall = 1")
    dev_env.gate_config.write_text(text)
    res = _serve("--config", str(dev_env.gate_config), "--model", "m@production")
    assert res.returncode == 2 and "refresh_intervall" in res.stderr


@pytest.mark.parametrize("server", ["serve", "registry"])
def test_served_connections_have_tcp_nodelay(server: str) -> None:
    """Accepted connections must not run Nagle: a response written as headers + body would
    wait for the client's delayed ACK (~40 ms per small inference, seen in bench/serve.py).
    The Registry and the serving runtime open their listeners through one function."""
    import asyncio
    import socket

    from trustload.cli.serve import _bind
    from trustload.registry.server import _bind as registry_bind

    sock = _bind("127.0.0.1:0") if server == "serve" else registry_bind("127.0.0.1", 0)

    async def accepted_nodelay() -> int:
        got: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            got.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=sock)
        try:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            value = await asyncio.wait_for(got, 5)
            writer.close()
            return value
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(accepted_nodelay()) != 0
