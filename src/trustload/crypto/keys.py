"""Key pairs and raw signature primitives (ECDSA P-256/P-384/P-521, Ed25519, RSA).

Private keys are PKCS#8 PEM (encrypted with ``TRUSTLOAD_KEY_PASSWORD`` when set),
public keys SPKI PEM: the same files cosign reads. Bad key files are usage errors
(exit 2) on the producer side; on the verifier side an unusable trusted key simply
verifies nothing (fail closed).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Union

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from trustload.errors import UsageError
from trustload.fsutil import atomic_write_bytes

PublicKey = Union[ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, rsa.RSAPublicKey]  # noqa: UP007
PrivateKey = Union[ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey]  # noqa: UP007
MAX_KEY_FILE = 64 * 1024
PASSWORD_ENV = "TRUSTLOAD_KEY_PASSWORD"  # noqa: S105 - the variable name, not a secret
_EC_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def key_password_from_env() -> bytes | None:
    """``TRUSTLOAD_KEY_PASSWORD`` as bytes, or None when unset or empty."""
    value = os.environ.get(PASSWORD_ENV)
    return value.encode("utf-8") if value else None


def generate_keypair(prefix: Path, password: bytes | None = None) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (PKCS#8 PEM, encrypted if ``password``) and ``PREFIX.pub``.

    Refuses to overwrite existing files (a lost signing key is not recoverable).
    """
    prefix = Path(prefix)
    key_path = prefix.with_name(prefix.name + ".key")
    pub_path = prefix.with_name(prefix.name + ".pub")
    for p in (key_path, pub_path):
        if p.exists() or p.is_symlink():
            raise UsageError(f"refusing to overwrite existing {p}")
    if not key_path.parent.is_dir():
        raise UsageError(f"no such directory: {key_path.parent}")
    private = ec.generate_private_key(ec.SECP256R1())
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    key_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
    )
    pub_pem = public_pem(private.public_key())
    atomic_write_bytes(key_path, key_pem, mode=0o600)
    atomic_write_bytes(pub_path, pub_pem)
    return key_path, pub_path


def _read_small(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE:
        raise UsageError(f"{what} {path} is too large")
    if not data.strip():
        raise UsageError(f"{what} {path} is empty")
    return data


def load_private_key(path: Path, password: bytes | None = None) -> PrivateKey:
    """Load a PEM private key; wrong password or a malformed file is a UsageError."""
    data = _read_small(Path(path), "private key")
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:
        msg = str(exc).lower()
        if "password was not given" in msg:
            raise UsageError(f"private key {path} is encrypted: set {PASSWORD_ENV}") from None
        raise UsageError(f"private key {path} is not encrypted but a password was given") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError(
            f"cannot load private key {path} (wrong password or not a PEM key): {exc}"
        ) from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _EC_HASH:
            raise UsageError(f"unsupported EC curve {key.curve.name}")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        return key
    raise UsageError(f"unsupported private key type in {path}")


def load_public_key_pem(data: bytes) -> PublicKey:
    """Parse an SPKI PEM public key; raises ValueError for anything unusable."""
    if not isinstance(data, bytes) or len(data) > MAX_KEY_FILE:
        raise ValueError("public key too large")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    return check_public_key(key)


def check_public_key(key: object) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _EC_HASH:
            raise ValueError(f"unsupported EC curve {key.curve.name}")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError("RSA key shorter than 2048 bits")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise ValueError(f"unsupported public key type {type(key).__name__}")


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(key: PublicKey) -> str:
    """``sha256:<hex>`` of the DER SubjectPublicKeyInfo (the audit record's signer)."""
    return "sha256:" + hashlib.sha256(public_der(key)).hexdigest()


def model_signing_hint(key: PublicKey) -> str:
    """model-signing 1.x ``publicKey.hint``: hex SHA-256 of the SPKI PEM bytes."""
    return hashlib.sha256(public_pem(key)).hexdigest()


def sign_message(key: PrivateKey, message: bytes) -> bytes:
    """Sign ``message`` with the scheme the key implies (ECDSA with the curve's hash)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(_EC_HASH[key.curve.name]()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def verify_message(key: PublicKey, signature: bytes, message: bytes) -> bool:
    """True iff ``signature`` is valid over ``message`` (RSA: PKCS#1 v1.5 or PSS, SHA-256)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(_EC_HASH[key.curve.name]()))
            return True
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
            return True
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            return True
        except InvalidSignature:
            key.verify(
                signature,
                message,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
                hashes.SHA256(),
            )
            return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def verify_prehashed_sha256(key: PublicKey, signature: bytes, digest: bytes) -> bool:
    """Verify a signature over a SHA-256 digest (cosign / hashedrekord blob signatures)."""
    if len(digest) != 32:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            return True
        if isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
                return True
            except InvalidSignature:
                key.verify(
                    signature,
                    digest,
                    padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
                    Prehashed(hashes.SHA256()),
                )
                return True
        return False  # Ed25519 signs messages, not digests
    except (InvalidSignature, ValueError, TypeError):
        return False
