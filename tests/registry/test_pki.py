"""The dev PKI issues what TLS stacks and the Registry's identity logic expect."""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from trustload.pki import issue_client_cert, issue_server_cert, new_ca, spiffe_id
from trustload.registry.auth import peer_identity


def test_server_and_client_certificates():
    ca = new_ca()
    server = issue_server_cert(ca, ("localhost", "127.0.0.1"))
    san = server.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = server.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]

    ident = spiffe_id("serving", "gate")
    assert ident == "spiffe://trustload.local/ns/serving/sa/gate"
    client = issue_client_cert(ca, ident)
    san = client.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [ident]
    eku = client.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    basic = client.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca is False
    ca.cert.public_key().verify(
        client.cert.signature,
        client.cert.tbs_certificate_bytes,
        ec.ECDSA(client.cert.signature_hash_algorithm),
    )


def test_peer_identity_prefers_the_san_uri():
    assert (
        peer_identity(
            {
                "subject": ((("commonName", "gate"),),),
                "subjectAltName": (("URI", "spiffe://t/ns/a/sa/b"),),
            }
        )
        == "spiffe://t/ns/a/sa/b"
    )
    assert peer_identity({"subject": ((("commonName", "gate"),),)}) == "gate"
    assert peer_identity({"subject": ((("organizationName", "o"),),)}) == "organizationName=o"
    assert peer_identity(None) is None
    assert peer_identity({}) is None
