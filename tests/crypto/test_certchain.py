"""Private-CA chains: identity pinned, validity checked (model-signing checks neither)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.crypto.helpers import NOW, cert_bundle, make_ca, make_leaf, pem
from trustload.checks.signature import check_model_signature
from trustload.decision import ReasonCode
from trustload.digests import ModelLayout, measure
from trustload.facts import TrustAnchors
from trustload.formats.oms import Resource, build_statement


def _statement(model: Path) -> dict[str, object]:
    m = measure(model)
    return build_statement(
        model.name, "files", [Resource(f.path, None, None, f.sha256) for f in m.files]
    )


def _check(
    model: Path, bundle: bytes, anchors: TrustAnchors
) -> tuple[bool, ReasonCode | None, str]:
    out = check_model_signature(ModelLayout.from_path(model), bundle, anchors, now=NOW)
    return out.result.ok, out.result.code, out.result.detail


def test_valid_chain_with_pinned_identity(model_dir: Path, tmp_path: Path) -> None:
    ca_key, ca = make_ca(tmp_path)
    leaf_key, leaf = make_leaf(ca_key, ca)
    bundle = cert_bundle(leaf_key, [leaf], _statement(model_dir))
    anchors = TrustAnchors(ca_certs=(pem(ca),), certificate_identity="release@example.com")
    out = check_model_signature(ModelLayout.from_path(model_dir), bundle, anchors, now=NOW)
    assert out.result.ok, out.result.detail
    assert out.signer == "release@example.com"


def test_intermediate_in_bundle(model_dir: Path, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    root_key, root = make_ca(tmp_path, "root")
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intermediate")]))
        .issuer_name(root.subject)
        .public_key(inter_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=10))
        .not_valid_after(NOW + timedelta(days=100))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    leaf_key, leaf = make_leaf(inter_key, inter)
    bundle = cert_bundle(leaf_key, [leaf, inter], _statement(model_dir))
    ok, code, detail = _check(
        model_dir,
        bundle,
        TrustAnchors(ca_certs=(pem(root),), certificate_identity="release@example.com"),
    )
    assert ok, detail
    # Without the intermediate the chain cannot be built.
    bundle2 = cert_bundle(leaf_key, [leaf], _statement(model_dir))
    assert (
        _check(model_dir, bundle2, TrustAnchors(ca_certs=(pem(root),)))[1]
        == ReasonCode.SIGNATURE_INVALID
    )


def test_wrong_identity_denied(model_dir: Path, tmp_path: Path) -> None:
    ca_key, ca = make_ca(tmp_path)
    leaf_key, leaf = make_leaf(ca_key, ca, email="intern@example.com")
    bundle = cert_bundle(leaf_key, [leaf], _statement(model_dir))
    ok, code, detail = _check(
        model_dir,
        bundle,
        TrustAnchors(ca_certs=(pem(ca),), certificate_identity="release@example.com"),
    )
    assert not ok and code == ReasonCode.SIGNATURE_INVALID and "identity" in detail


def test_expired_and_not_yet_valid_leaf_denied(model_dir: Path, tmp_path: Path) -> None:
    ca_key, ca = make_ca(tmp_path)
    anchors = TrustAnchors(ca_certs=(pem(ca),), certificate_identity="release@example.com")
    for nb, na in (
        (NOW - timedelta(days=20), NOW - timedelta(days=1)),
        (NOW + timedelta(days=1), NOW + timedelta(days=20)),
    ):
        leaf_key, leaf = make_leaf(ca_key, ca, not_before=nb, not_after=na)
        bundle = cert_bundle(leaf_key, [leaf], _statement(model_dir))
        ok, code, detail = _check(model_dir, bundle, anchors)
        assert not ok and code == ReasonCode.SIGNATURE_INVALID and "not valid" in detail


def _model_signing_sign(model_dir: Path, tmp_path: Path, leaf_key: Any, leaf: Any, ca: Any) -> Path:
    """Sign ``model_dir`` with model-signing's own certificate signer (leaf under ``ca``)."""
    from cryptography.hazmat.primitives import serialization
    from model_signing import signing as ms_signing

    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "leaf.pem").write_bytes(pem(leaf))
    (tmp_path / "ca.pem").write_bytes(pem(ca))
    sig = tmp_path / "model.sig"
    ms_signing.Config().use_certificate_signer(
        private_key=tmp_path / "leaf.key",
        signing_certificate=tmp_path / "leaf.pem",
        certificate_chain=[tmp_path / "ca.pem"],
    ).sign(model_dir, sig)
    return sig


def test_model_signing_accepts_expired_leaf_trustload_does_not(
    model_dir: Path, tmp_path: Path
) -> None:
    """The known trap: model-signing 1.1.1's certificate verifier ignores expiry."""
    from model_signing import verifying

    ca_key, ca = make_ca(tmp_path)
    leaf_key, leaf = make_leaf(
        ca_key, ca, not_before=NOW - timedelta(days=20), not_after=NOW - timedelta(days=1)
    )
    sig = _model_signing_sign(model_dir, tmp_path, leaf_key, leaf, ca)
    verifying.Config().use_certificate_verifier(certificate_chain=[tmp_path / "ca.pem"]).verify(
        model_dir, sig
    )
    ok, code, detail = _check(model_dir, sig.read_bytes(), TrustAnchors(ca_certs=(pem(ca),)))
    assert not ok and code == ReasonCode.SIGNATURE_INVALID and "not valid" in detail


def test_model_signing_certificate_mode_valid_leaf(model_dir: Path, tmp_path: Path) -> None:
    ca_key, ca = make_ca(tmp_path)
    leaf_key, leaf = make_leaf(ca_key, ca)
    sig = _model_signing_sign(model_dir, tmp_path, leaf_key, leaf, ca)
    ok, _code, detail = _check(
        model_dir,
        sig.read_bytes(),
        TrustAnchors(ca_certs=(pem(ca),), certificate_identity="release@example.com"),
    )
    assert ok, detail


def test_untrusted_ca_and_no_ca(model_dir: Path, tmp_path: Path) -> None:
    ca_key, ca = make_ca(tmp_path, "rogue")
    _other_key, other = make_ca(tmp_path, "trusted")
    leaf_key, leaf = make_leaf(ca_key, ca)
    bundle = cert_bundle(leaf_key, [leaf], _statement(model_dir))
    assert (
        _check(model_dir, bundle, TrustAnchors(ca_certs=(pem(other),)))[1]
        == ReasonCode.SIGNATURE_INVALID
    )
    assert _check(model_dir, bundle, TrustAnchors())[1] == ReasonCode.SIGNATURE_INVALID
    assert (
        _check(model_dir, bundle, TrustAnchors(ca_certs=(b"not a cert",)))[1]
        == ReasonCode.SIGNATURE_INVALID
    )


def test_signature_by_other_key_than_leaf(model_dir: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key, ca = make_ca(tmp_path)
    _leaf_key, leaf = make_leaf(ca_key, ca)
    bundle = cert_bundle(ec.generate_private_key(ec.SECP256R1()), [leaf], _statement(model_dir))
    assert (
        _check(model_dir, bundle, TrustAnchors(ca_certs=(pem(ca),)))[1]
        == ReasonCode.SIGNATURE_INVALID
    )


def test_keyless_without_tlog_is_transparency_unavailable(model_dir: Path, tmp_path: Path) -> None:
    """A certificate bundle checked as Sigstore keyless, with no log entry in it."""
    ca_key, ca = make_ca(tmp_path)
    leaf_key, leaf = make_leaf(ca_key, ca)
    bundle = cert_bundle(leaf_key, [leaf], _statement(model_dir))
    root = (
        Path(__file__).resolve().parents[2]
        / ".."
        / "shared"
        / "interop"
        / "sigstore-python"
        / "trusted_roots"
        / "production.trusted_root.json"
    )
    if not root.is_file():
        pytest.skip("shared interop trusted root not present")
    anchors = TrustAnchors(
        trusted_root=root,
        certificate_identity="release@example.com",
        certificate_oidc_issuer="https://issuer",
    )
    ok, code, _ = _check(model_dir, bundle, anchors)
    assert not ok and code == ReasonCode.TRANSPARENCY_UNAVAILABLE
