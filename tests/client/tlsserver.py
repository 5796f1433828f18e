"""Small real HTTPS servers (mTLS on 127.0.0.1, ephemeral port) that misbehave on purpose.

Each route is a function ``(handler) -> None`` writing a raw answer, so a test can send
redirects, drip-feed a body and close mid-way, send more bytes than announced, etc.
The TLS handshake runs in the handler thread, so a refused client certificate never
blocks the accept loop.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _dispatch(self) -> None:
        self.server.owner.requests.append((self.command, self.path, dict(self.headers.items())))
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        for pattern, route in self.server.owner.routes:
            if re.fullmatch(pattern, self.path):
                route(self)
                return
        self.send_json(404, {"error": {"code": "NOT_FOUND", "message": "no route"}})

    do_GET = do_HEAD = do_POST = do_PUT = _dispatch

    # answers
    def send_json(self, status: int, doc: Any) -> None:
        import json

        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_blob(self, data: bytes, *, ranges: bool = True) -> None:
        start = 0
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if ranges and m:
            start = int(m.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data[start:])

    def send_truncated(self, data: bytes, cut: int) -> None:
        """Announce the whole blob, send ``cut`` bytes, then drop the connection."""
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m:
            start = int(m.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start : start + cut])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def redirect(self, location: str, status: int = 302) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: TLSServer

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(10)
        wrapped = self.owner.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.owner.errors.append(client_address)


class TLSServer:
    def __init__(
        self,
        server_cert: Path,
        server_key: Path,
        client_ca: Path | None,
        routes: list[tuple[str, Route]] | None = None,
        *,
        max_version: ssl.TLSVersion | None = None,
    ) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(server_cert), str(server_key))
        if client_ca is not None:
            ctx.load_verify_locations(cafile=str(client_ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
        if max_version is not None:
            ctx.maximum_version = max_version
        self.context = ctx
        self.routes: list[tuple[str, Route]] = list(routes or [])
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.errors: list[Any] = []
        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def route(self, pattern: str, fn: Route) -> None:
        self.routes.insert(0, (pattern, fn))

    def __enter__(self) -> TLSServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
