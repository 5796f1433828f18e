"""A deadline for a response's *head*, which httpx's per-read timeouts cannot give.

A registry that drip-feeds its status line and headers (one byte just inside every
read timeout) would hold a request forever: httpx times each read, not the request.
Bodies are covered by the slow-retrieval floor once they start; this covers the part
before, by wrapping httpcore's network streams so that every read and write made while
:data:`HEAD_DEADLINE` is set is cut at that instant (``httpcore.ReadTimeout``, which the
transport maps to ``REGISTRY_UNAVAILABLE``).
"""

from __future__ import annotations

import time
import typing
from contextvars import ContextVar

import httpcore

HEAD_DEADLINE: ContextVar[float | None] = ContextVar("oci_head_deadline", default=None)


def _bounded(timeout: float | None, *, write: bool) -> float | None:
    deadline = HEAD_DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        error = httpcore.WriteTimeout if write else httpcore.ReadTimeout
        raise error("the registry did not answer within the request deadline")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, write=False))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, write=True))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout, write=False))
        return DeadlineStream(inner)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, _bounded(timeout, write=False), local_address, socket_options
        )
        return DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for OCI registries")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
