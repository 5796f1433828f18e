"""Throwaway PKI for client tests: a CA, server certificates for 127.0.0.1/localhost,
client certificates; a thin file-writing wrapper over :mod:`trustload.pki`.

Everything is generated at run time under tmp_path (no key ever committed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trustload import pki


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path


class CA:
    def __init__(self, directory: Path, name: str = "test-ca") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.name = name
        self.issued = pki.new_ca(name)
        self.key = self.issued.key
        self.cert = self.issued.cert
        self.pem = directory / f"{name}.pem"
        pki.write_cert(self.pem, self.cert)

    def issue(
        self, name: str, *, server: bool, hosts: tuple[str, ...] = (), spiffe: str | None = None
    ) -> Identity:
        if server:
            leaf = pki.issue_server_cert(self.issued, hosts or ("localhost", "127.0.0.1"))
        else:
            identity = spiffe or f"spiffe://test/ns/tests/sa/{name}"
            leaf = pki.issue_client_cert(self.issued, identity, common_name=name)
        identity_paths = Identity(self.dir / f"{name}.pem", self.dir / f"{name}.key")
        leaf.write(identity_paths.cert, identity_paths.key)
        return identity_paths
