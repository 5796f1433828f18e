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


def verify_chain(
    leaf_der: bytes,
    intermediates_der: Sequence[bytes],
    ca_pems: Sequence[bytes],
    *,
    at: datetime,
    identity: str | None,
) -> tuple[PublicKey, str]:
    """Build and check leaf -> intermediates -> configured CA at time ``at``.

    Returns the leaf public key and its identity. Raises SignatureError otherwise.
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
    # Validity is checked explicitly too (clear message; never trust a library default).
    for cert in [leaf, *inter]:
        if not (cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
            raise SignatureError(
                f"certificate {cert.subject.rfc4514_string()!r} not valid at {at.isoformat()} "
                f"(valid {cert.not_valid_before_utc.isoformat()} .. "
                f"{cert.not_valid_after_utc.isoformat()})"
            )
    try:
        verifier = (
            PolicyBuilder()
            .store(Store(roots))
            .time(at)
            .max_chain_depth(MAX_CHAIN)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca().may_be_present(
                    x509.ExtendedKeyUsage, x509.verification.Criticality.AGNOSTIC, None
                ),
                ee_policy=ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        verifier.verify(leaf, inter)
    except (VerificationError, ValueError, x509.UnsupportedGeneralNameType) as exc:
        raise SignatureError(f"certificate chain does not verify to a trusted CA: {exc}") from None
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
    names = certificate_identities(leaf)
    if identity is not None and identity not in names:
        raise SignatureError(f"certificate identity {names} does not match pinned {identity!r}")
    try:
        key = check_public_key(leaf.public_key())
    except ValueError as exc:
        raise SignatureError(f"leaf key unusable: {exc}") from None
    return key, (identity or (names[0] if names else leaf.subject.rfc4514_string()))
