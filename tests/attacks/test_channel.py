"""Channel attacks: the gate talks only to the allowlisted Registry over mTLS with
TLS >= 1.2 and a server certificate for the right name from the configured CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.attacks.helpers import Arena, Gate, assert_denied, with_registry
from tests.attacks.hostile import Mitm
from tests.client.pki import CA
from tests.client.tlsserver import TLSServer
from trustload.client.api import RegistryClient
from trustload.client.transport import build_ssl_context
from trustload.decision import ReasonCode
from trustload.pki import issue_server_cert, load_issued


def registry_cert(arena: Arena) -> tuple[Path, Path]:
    pki = arena.env.root / "pki"
    return pki / "registry.pem", pki / "registry.key"


@pytest.fixture
def impostor(arena: Arena) -> Iterator[TLSServer]:
    """A server the gate can reach; each test decides what certificate it shows."""
    started: list[TLSServer] = []

    def make(cert: Path, key: Path, **kw: object) -> TLSServer:
        srv = TLSServer(cert, key, arena.env.ca, **kw)  # type: ignore[arg-type]
        srv.route(r".*", lambda h: h.send_json(500, {"error": {"code": "INTERNAL"}}))
        srv.__enter__()
        started.append(srv)
        return srv

    yield make  # type: ignore[misc]
    for srv in started:
        srv.__exit__(None, None, None)


def test_channel_no_client_certificate(arena: Arena, gate: Gate) -> None:
    """The gate's TLS context carries no client certificate (mTLS stripped).

    Attack: channel / mTLS
    """
    name = arena.good()
    cfg = gate.cfg
    client = RegistryClient(
        cfg.registry, ssl_context=build_ssl_context(cfg.registry.ca, None, None)
    )
    with client:
        result = gate.run(f"{name}@production", client=client)
    assert_denied(result, ReasonCode.AUTH_FAILED, cache_dir=gate.cache_dir)


def test_channel_client_certificate_of_other_ca(arena: Arena, gate: Gate) -> None:
    """A client certificate with the right SPIFFE identity from a rogue CA.

    Attack: channel / mTLS
    """
    name = arena.good()
    rogue = CA(arena.workdir(), "rogue-ca").issue(
        "gate", server=False, spiffe="spiffe://trustload.local/ns/serving/sa/gate"
    )
    cfg = with_registry(gate.cfg, client_cert=rogue.cert, client_key=rogue.key)
    assert_denied(
        gate.run(f"{name}@production", cfg), ReasonCode.AUTH_FAILED, cache_dir=gate.cache_dir
    )


def test_channel_plain_http(arena: Arena, gate: Gate) -> None:
    """The Registry URL downgraded to http:// (even if the allowlist is edited to match).

    Attack: channel / transport
    """
    name = arena.good()
    url = arena.reg.url.replace("https://", "http://")
    assert_denied(
        gate.run(f"{name}@production", gate.via(url)),
        ReasonCode.REGISTRY_NOT_ALLOWED,
        cache_dir=gate.cache_dir,
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TLS 1.1 on purpose
def test_channel_tls_1_1_only_server(arena: Arena, gate: Gate, impostor) -> None:  # type: ignore[no-untyped-def]
    """A server (with a trusted certificate) that offers only TLS 1.1.

    Attack: channel / transport
    """
    cert, key = registry_cert(arena)
    srv = impostor(cert, key, max_version=ssl.TLSVersion.TLSv1_1)
    srv.context.minimum_version = ssl.TLSVersion.TLSv1
    srv.context.set_ciphers("DEFAULT:@SECLEVEL=0")
    assert_denied(
        gate.run("risk@production", gate.via(srv.url)),
        ReasonCode.TLS_POLICY,
        cache_dir=gate.cache_dir,
    )


def test_channel_registry_host_not_allowlisted(arena: Arena, gate: Gate) -> None:
    """The configured URL points at a host outside the allowlist.

    Attack: channel / allowlist
    """
    name = arena.good()
    cfg = with_registry(gate.cfg, allowlist=["https://registry.internal.example:8443"])
    assert_denied(
        gate.run(f"{name}@production", cfg),
        ReasonCode.REGISTRY_NOT_ALLOWED,
        cache_dir=gate.cache_dir,
    )


def test_channel_redirect_off_allowlist(arena: Arena, gate: Gate, impostor) -> None:  # type: ignore[no-untyped-def]
    """The Registry answers the resolve call with a redirect to another host.

    Attack: channel / allowlist
    """
    cert, key = registry_cert(arena)
    srv = impostor(cert, key)
    srv.route(r"/v1/models/.*", lambda h: h.redirect("https://models.attacker.example/v1/x"))
    assert_denied(
        gate.run("risk@production", gate.via(srv.url)),
        ReasonCode.REGISTRY_NOT_ALLOWED,
        cache_dir=gate.cache_dir,
    )


def test_channel_blob_redirect_to_plain_http(arena: Arena, gate: Gate) -> None:
    """The artifact download redirected to http:// on the same host (TLS stripping).

    Attack: channel / allowlist
    """
    name = arena.name()
    rec = arena.publish(name, "1", arena.model_file())
    with Mitm(arena.reg) as mitm:
        hexd = rec.artifact_digest.removeprefix("sha256:")
        mitm.redirect[hexd] = mitm.url.replace("https://", "http://") + f"/v1/blobs/sha256/{hexd}"
        result = gate.run(f"{name}@production", gate.via(mitm.url))
    assert_denied(result, ReasonCode.REGISTRY_NOT_ALLOWED, cache_dir=gate.cache_dir)


def test_channel_server_certificate_for_other_name(arena: Arena, gate: Gate, impostor) -> None:  # type: ignore[no-untyped-def]
    """A server certificate from the trusted CA, but issued for another host name.

    Attack: channel / server identity
    """
    pki = arena.env.root / "pki"
    other = issue_server_cert(load_issued(pki / "ca.pem", pki / "ca.key"), ("billing.internal",))
    work = arena.workdir()
    other.write(work / "other.pem", work / "other.key")
    srv = impostor(work / "other.pem", work / "other.key")
    assert_denied(
        gate.run("risk@production", gate.via(srv.url)),
        ReasonCode.TLS_POLICY,
        cache_dir=gate.cache_dir,
    )


def test_channel_server_certificate_of_other_ca(arena: Arena, gate: Gate, impostor) -> None:  # type: ignore[no-untyped-def]
    """An impostor Registry with a certificate for 127.0.0.1 from an untrusted CA.

    Attack: channel / server identity
    """
    fake = CA(arena.workdir(), "impostor-ca").issue("registry", server=True, hosts=("127.0.0.1",))
    srv = impostor(fake.cert, fake.key)
    assert_denied(
        gate.run("risk@production", gate.via(srv.url)),
        ReasonCode.TLS_POLICY,
        cache_dir=gate.cache_dir,
    )
