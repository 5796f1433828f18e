"""Run the Registry: uvicorn over HTTPS with mTLS required and TLS 1.2 minimum.

* The server's ``SSLContext`` sets ``verify_mode = CERT_REQUIRED`` with only the
  configured client CA loaded: a client without a certificate from that CA fails
  the TLS handshake itself, before any HTTP is spoken (R2.1, R5).
* ``minimum_version = TLSv1_2`` on the server context (R5 "TLS 1.2+ mandatory").
* uvicorn does not hand the peer certificate to the app, so a small ``H11Protocol``
  subclass (pinned as the HTTP implementation) reads it from the transport after the
  handshake and puts the identity it names into each request's ``scope["state"]``.
* uvicorn's own signal handling gives a clean stop on SIGTERM / SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from trustload.config import RegistryServiceConfig, ServerConfig, load_registry_config
from trustload.errors import UsageError
from trustload.identifiers import parse_decimal
from trustload.oidc import cert_thumbprint
from trustload.registry.auth import PEER_STATE_KEY, PEER_X5T_KEY, peer_identity

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class PeerCertH11Protocol(H11Protocol):
    """H11Protocol that exposes the verified client certificate's identity to the app."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        identity = None
        thumbprint = None
        if ssl_object is not None:
            identity = peer_identity(ssl_object.getpeercert())
            der = ssl_object.getpeercert(binary_form=True)
            thumbprint = cert_thumbprint(der) if der else None
        # A per-connection copy: scope["state"] of each request on it carries the peer.
        self.app_state = {
            **self.app_state,
            PEER_STATE_KEY: identity,
            PEER_X5T_KEY: thumbprint,  # for sender-constrained tokens (RFC 8705)
        }


def server_ssl_context(cfg: ServerConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.set_ciphers(TLS12_CIPHERS)
    try:
        ctx.load_cert_chain(str(cfg.cert), str(cfg.key))
        ctx.load_verify_locations(cafile=str(cfg.client_ca))
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the Registry's TLS material: {exc}") from exc
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    port = parse_decimal(port_text)
    if not sep or not host or port is None or port > 65535:
        raise UsageError(f"server.listen must be HOST:PORT, got {listen!r}")
    return host, port


def resolve_database_url(database: str, base: Path) -> str:
    """``sqlite:///relative.db`` is relative to the config file, like every path."""
    prefix = "sqlite:///"
    if database.startswith(prefix):
        rest = database[len(prefix) :]
        if rest and not rest.startswith("/") and not rest.startswith(":memory:"):
            return prefix + str((base / rest).resolve())
    return database


def _bind(host: str, port: int) -> socket.socket:
    from trustload.listen import tcp_listener

    sock = tcp_listener(host, port)
    sock.set_inheritable(True)
    return sock


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"https://{shown}:{port}"


def build(cfg: RegistryServiceConfig, config_dir: Path) -> Any:
    from sqlalchemy.exc import SQLAlchemyError

    from trustload.oidc import TokenVerifier
    from trustload.registry.app import build_app

    cfg.server.data_dir.mkdir(parents=True, exist_ok=True)
    verifier = TokenVerifier(cfg.oidc)
    try:
        return build_app(
            cfg.server.data_dir,
            resolve_database_url(cfg.server.database, config_dir),
            verifier,
            max_blob_bytes=cfg.server.max_blob_bytes,
            max_json_bytes=cfg.server.max_json_bytes,
            blob_store=cfg.server.blob_store,
            oci=cfg.oci,
        )
    except SQLAlchemyError as exc:
        # A configuration problem (unreachable server, bad credentials): exit 2.
        raise UsageError(
            f"cannot open the Registry database: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0][:300]}"
        ) from exc


def serve(config_path: Path) -> None:
    """Run until SIGTERM / SIGINT. Prints the URL it listens on to stdout."""
    import uvicorn

    cfg = load_registry_config(config_path)
    app = build(cfg, config_path.resolve().parent)
    ctx = server_ssl_context(cfg.server)
    host, port = parse_listen(cfg.server.listen)
    sock = _bind(host, port)
    actual_port = sock.getsockname()[1]

    config = uvicorn.Config(
        app,
        http=PeerCertH11Protocol,
        ws="none",  # no WebSocket upgrade path that would bypass the peer-identity protocol
        ssl_context_factory=lambda _config, _default: ctx,
        lifespan="off",
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=10,
        limit_concurrency=1024,
        backlog=1024,
    )
    server = uvicorn.Server(config)

    def _stop(_sig: int, _frame: object) -> None:
        # uvicorn re-raises the signal it handled once shut down; landing here instead
        # of the default handler makes a requested stop exit 0. Before uvicorn installs
        # its own handlers, this also stops a server still starting.
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    print(url_for(host, actual_port), flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    print("trustload registry: stopped", file=sys.stderr, flush=True)
