"""Fixtures: a throwaway PKI, misbehaving TLS servers and client configs under tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.client.pki import CA, Identity
from tests.client.tlsserver import TLSServer
from trustload.config import RegistryClientConfig

# A syntactically valid JWT (not verified by these test servers).
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJnYXRlIiwidGVuYW50X2lkIjoiQSIsInB1cnBvc2UiOlsieCJdfQ.c2ln"


@dataclass
class Pki:
    ca: CA
    server: Identity
    client: Identity
    other_ca: CA
    other_client: Identity
    token_file: Path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = CA(tmp_path / "pki", "ca")
    other = CA(tmp_path / "other", "other-ca")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    return Pki(
        ca=ca,
        server=ca.issue("server", server=True, hosts=("127.0.0.1", "localhost")),
        client=ca.issue("gate", server=False, spiffe="spiffe://test/ns/serving/sa/gate"),
        other_ca=other,
        other_client=other.issue("intruder", server=False),
        token_file=token_file,
    )


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[Callable[..., TLSServer]]:
    started: list[TLSServer] = []

    def make(**kwargs: object) -> TLSServer:
        srv = TLSServer(pki.server.cert, pki.server.key, pki.ca.pem, **kwargs)  # type: ignore[arg-type]
        srv.__enter__()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.__exit__(None, None, None)


@pytest.fixture
def client_cfg(pki: Pki) -> Callable[..., RegistryClientConfig]:
    def make(url: str, allowlist: list[str] | None = None, **kw: object) -> RegistryClientConfig:
        data: dict[str, object] = {
            "url": url,
            "allowlist": [url] if allowlist is None else allowlist,
            "ca": pki.ca.pem,
            "client_cert": pki.client.cert,
            "client_key": pki.client.key,
            "token_file": pki.token_file,
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
            "retries": 2,
        }
        data.update(kw)
        return RegistryClientConfig.model_validate(data)

    return make
