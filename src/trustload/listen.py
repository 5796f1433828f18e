"""The one way trustload's servers (Registry, serving runtime) open a listening socket.

``IPPROTO_TCP`` rather than 0, and ``TCP_NODELAY``: asyncio sets TCP_NODELAY on accepted
sockets only when the listener's protocol says TCP, and without it a response written as
headers + body meets Nagle and the client's delayed ACK (~40 ms per small request instead
of ~1 ms, seen in bench/serve.py). Both servers had their own copy; now they share this.
"""

from __future__ import annotations

import ipaddress
import socket

from trustload.errors import UsageError


def tcp_listener(host: str, port: int) -> socket.socket:
    """A bound (not yet listening) TCP socket for ``host:port``; a usage error otherwise."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock
