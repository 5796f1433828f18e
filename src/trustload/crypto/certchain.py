"""Private-CA certificate chains for model signatures (model-signing "certificate" mode).

model-signing 1.1.1 accepts an *expired* leaf and checks no signer identity; the gate
does both itself: the chain must build to one of the configured CA certificates with
every certificate valid at the verification time, the leaf must be fit for code
signing (when it says what it is for), and its identity must equal the pinned one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trustload.crypto.keys import PublicKey, check_public_key
from trustload.errors import SignatureError

MAX_CHAIN = 8


def load_pem_certs(blobs: Sequence[bytes]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for blob in blobs:
        try:
            out.extend(x509.load_pem_x509_certificates(blob))
        except ValueError as exc:
            raise SignatureError(f"unusable CA certificate: {exc}") from None
    return out


def certificate_identities(cert: x509.Certificate) -> list[str]:
    """SAN e-mail / URI / DNS values; the subject CN only when there is no SAN."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    values: list[str] = []
    if san is not None:
        values.extend(san.get_values_for_type(x509.RFC822Name))
        values.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
        values.extend(san.get_values_for_type(x509.DNSName))
    if not values:
        values.extend(
            str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        )
    return values


OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
"""Fulcio's first issuer extension: the raw issuer string as the extension value."""
OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
"""Fulcio's later issuer extension: a DER UTF8String."""


def oidc_issuers(cert: x509.Certificate) -> list[str]:
    """The OIDC issuer(s) a Fulcio-style certificate records (either extension)."""
    out: list[str] = []
    for oid in (OIDC_ISSUER_V2, OIDC_ISSUER_V1):
        try:
            ext = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = getattr(ext, "value", b"")
        if oid == OIDC_ISSUER_V2:
            # UTF8String: tag 0x0c, then a short or long-form length.
            if len(raw) < 2 or raw[0] != 0x0C:
                continue
            n, body = raw[1], raw[2:]
            if n & 0x80:
                width = n & 0x7F
                n, body = int.from_bytes(body[:width], "big"), body[width:]
            raw = body[:n] if len(body) == n else b""
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return out


def match_identity(cert: x509.Certificate, identity: str | None, issuer: str | None) -> str:
    """The one place a signer identity is pinned (OMS bundles, cosign images and blobs).

    ``identity`` must equal one of the certificate's identities exactly (no patterns);
    ``issuer``, when pinned, must equal the certificate's OIDC issuer extension exactly.
    Returns the identity to record as the signer.
    """
    names = certificate_identities(cert)
    if identity is not None and identity not in names:
        raise SignatureError(f"certificate identity {names} does not match pinned {identity!r}")
    if issuer is not None:
        issuers = oidc_issuers(cert)
        if issuer not in issuers:
            raise SignatureError(
                f"certificate OIDC issuer {issuers} does not match pinned {issuer!r}"
            )
    return identity or (names[0] if names else cert.subject.rfc4514_string())


def _ca_key_usage(_policy: object, _cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    if ku is not None and not ku.key_cert_sign:
        raise ValueError("CA certificate's KeyUsage does not allow certificate signing")


def _check_validity(certs: Sequence[x509.Certificate], at: datetime) -> None:
    """Validity checked explicitly too (a clear message; never trust a library default)."""
    for cert in certs:
        if not (cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
            raise SignatureError(
                f"certificate {cert.subject.rfc4514_string()!r} not valid at {at.isoformat()} "
                f"(valid {cert.not_valid_before_utc.isoformat()} .. "
                f"{cert.not_valid_after_utc.isoformat()})"
            )


def _check_leaf_usage(leaf: x509.Certificate) -> None:
    """A leaf that states its usages must allow digital signatures and code signing."""
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.digital_signature:
            raise SignatureError("leaf certificate is not for digital signatures")
    except x509.ExtensionNotFound:
        pass
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
            raise SignatureError("leaf certificate is not for code signing")
    except x509.ExtensionNotFound:
        pass


def verify_chain(
    leaf_der: bytes,
    intermediates_der: Sequence[bytes],
    ca_pems: Sequence[bytes],
    *,
    at: datetime,
    identity: str | None,
    issuer: str | None = None,
) -> tuple[PublicKey, str]:
    """Build and check leaf -> intermediates -> configured CA at time ``at``.

    Returns the leaf public key and its identity (see :func:`match_identity`). Raises
    SignatureError otherwise.
    """
    from cryptography.x509.verification import (
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    if len(intermediates_der) > MAX_CHAIN:
        raise SignatureError("certificate chain too long")
    roots = load_pem_certs(ca_pems)
    if not roots:
        raise SignatureError("no CA certificates configured")
    try:
        leaf = x509.load_der_x509_certificate(leaf_der)
        inter = [x509.load_der_x509_certificate(d) for d in intermediates_der]
    except ValueError as exc:
        raise SignatureError(f"malformed certificate in bundle: {exc}") from None
    _check_validity([leaf, *inter], at)
    try:
        verifier = (
            PolicyBuilder()
            .store(Store(roots))
            .time(at)
            .max_chain_depth(MAX_CHAIN)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca()
                .may_be_present(x509.ExtendedKeyUsage, x509.verification.Criticality.AGNOSTIC, None)
                # As Go's x509 (cosign): a CA without KeyUsage is accepted (private PKIs
                # issue such roots); one that has it must allow certificate signing.
                .may_be_present(
                    x509.KeyUsage, x509.verification.Criticality.AGNOSTIC, _ca_key_usage
                ),
                ee_policy=ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        verifier.verify(leaf, inter)
    except (VerificationError, ValueError, x509.UnsupportedGeneralNameType) as exc:
        raise SignatureError(f"certificate chain does not verify to a trusted CA: {exc}") from None
    _check_leaf_usage(leaf)
    if not identity:
        # Fail closed even if a caller skipped the config check: "any leaf this CA ever
        # issued" is not an identity.
        raise SignatureError("no certificate_identity is pinned for the configured CA")
    signer = match_identity(leaf, identity, issuer)
    try:
        key = check_public_key(leaf.public_key())
    except ValueError as exc:
        raise SignatureError(f"leaf key unusable: {exc}") from None
    return key, signer
