"""A hostile man-in-the-middle in front of the real Registry.

It holds a server certificate the gate trusts (the dev-env Registry certificate: the
strongest network attacker, e.g. a compromised front-end or mirror), requires the
gate's client certificate like the Registry does, forwards every request to the real
Registry over mTLS with the gate's own bearer token, and then lies on purpose:
rewrites records, replays old answers, swaps blobs, sends endless data or drip-feeds.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.client.tlsserver import Handler, TLSServer
from tests.support.registry import RunningRegistry

RECORD = re.compile(r"^/v1/models/[^/]+/(resolve/[^/]+|versions/[^/]+)$")
BLOB = re.compile(r"^/v1/blobs/sha256/([0-9a-f]{64})$")


class Mitm:
    def __init__(self, reg: RunningRegistry) -> None:
        env = reg.env
        self.reg = reg
        cert, key = env.root / "pki" / "registry.pem", env.root / "pki" / "registry.key"
        self.server = TLSServer(cert, key, env.ca)
        self.server.route(r".*", self._forward)
        self.upstream = httpx.Client(
            base_url=reg.url, verify=env.ssl_context("gate"), timeout=30.0, trust_env=False
        )
        self.lock = threading.Lock()
        self.on_record: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.replay: dict[str, bytes] = {}  # path -> body answered verbatim (200)
        self.on_blob: Callable[[str, bytes], bytes] | None = None
        self.endless: set[str] = set()  # hex digests answered with endless chunked data
        self.drip: dict[str, int] = {}  # hex digest -> announced size, drip-fed byte by byte
        self.redirect: dict[str, str] = {}  # hex digest -> Location answered (302)
        # hex digest -> (bytes announced, bytes sent, then what) ; then in {"close", "reset"}
        self.cut: dict[str, tuple[int | None, int, str]] = {}
        self.after_cut: Callable[[], None] | None = None
        self.seen: list[str] = []
        self.ranges: list[str | None] = []  # Range header of every blob request

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> Mitm:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)
        self.upstream.close()

    def fetch(self, path: str, token: str) -> httpx.Response:
        return self.upstream.get(path, headers={"Authorization": f"Bearer {token}"})

    # ---------------------------------------------------------------- the handler
    def _forward(self, h: Handler) -> None:
        path = h.path
        self.seen.append(path)
        if path in self.replay:
            body = self.replay[path]
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        blob = BLOB.match(path)
        if blob and blob.group(1) in self.endless:
            self._send_endless(h)
            return
        if blob and blob.group(1) in self.redirect:
            h.redirect(self.redirect[blob.group(1)])
            return
        if blob and blob.group(1) in self.drip:
            self._send_drip(h, self.drip[blob.group(1)])
            return
        headers = {"Authorization": h.headers.get("Authorization", "")}
        if blob:
            self.ranges.append(h.headers.get("Range"))
        try:
            resp = self.upstream.request(h.command, path, headers=headers)
        except httpx.TransportError:  # the backend is gone: answer like a reverse proxy
            h.send_json(502, {"error": {"code": "INTERNAL", "message": "bad gateway"}})
            return
        if blob and blob.group(1) in self.cut and resp.status_code == 200:
            self._send_cut(h, resp.content, *self.cut[blob.group(1)])
            return
        body = resp.content
        if resp.status_code == 200 and RECORD.match(path) and self.on_record is not None:
            body = json.dumps(self.on_record(json.loads(body))).encode()
        if resp.status_code == 200 and blob:
            if self.on_blob is not None:
                body = self.on_blob(blob.group(1), body)
            h.send_blob(body)
            return
        h.send_response(resp.status_code)
        h.send_header("Content-Type", resp.headers.get("content-type", "application/json"))
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _send_cut(
        self, h: Handler, body: bytes, announced: int | None, sent: int, then: str
    ) -> None:
        """Announce ``announced`` bytes (default: all), send ``sent``, then close or reset."""
        import socket
        import struct

        m = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range") or "")
        start = int(m.group(1)) if m else 0
        if m:
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            h.send_response(200)
        total = len(body) if announced is None else announced
        h.send_header("Content-Length", str(total - start))
        h.end_headers()
        h.wfile.write(body[start : start + max(0, sent - start)] if m else body[:sent])
        h.wfile.flush()
        if self.after_cut is not None:
            self.after_cut()
        h.close_connection = True
        if then == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
        elif then == "close":
            h.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _send_endless(h: Handler) -> None:
        """No Content-Length, chunked, never ending (stops at 64 MiB or a closed socket)."""
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"A" * 65536
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        try:
            for _ in range(1024):
                h.wfile.write(framed)
        except OSError:
            pass
        h.close_connection = True

    @staticmethod
    def _send_drip(h: Handler, size: int) -> None:
        """Announce the recorded size, then one byte every 50 ms (a slow-retrieval attack)."""
        h.send_response(200)
        h.send_header("Content-Length", str(size))
        h.end_headers()
        try:
            for _ in range(600):  # at most 30 s, far beyond any sane floor
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass
        h.close_connection = True
