"""Where the gate does more than sigstore-python: Rekor intoto/0.0.2 and managed-key bundles.

These tests show the extra paths really check what they claim (no check was skipped
to make the upstream pass cases pass).
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import pytest

from tests.support.interop import interop_dir
from trustload.crypto.verify import verify_bundle
from trustload.decision import ReasonCode
from trustload.errors import TrustloadError
from trustload.facts import TrustAnchors

INTEROP = interop_dir()
BV = INTEROP / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
if not BV.is_dir():  # pragma: no cover
    pytest.skip(f"interop vectors not present at {INTEROP}", allow_module_level=True)

NOW = datetime.now(UTC)
INTOTO = BV / "intoto-with-custom-trust-root"
IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)


def _body_tampered(raw: bytes, mutate: object) -> object:
    from sigstore.models import Bundle

    doc = json.loads(raw)
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    mutate(body)  # type: ignore[operator]
    entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()
    return Bundle.from_json(json.dumps(doc))


def test_intoto_v002_body_must_match_envelope() -> None:
    from sigstore.models import Bundle

    from trustload.crypto.sigstore_impl import _validate_intoto_v002_body

    raw = (INTOTO / "bundle.sigstore.json").read_bytes()
    good = Bundle.from_json(raw)
    _validate_intoto_v002_body(good, good._dsse_envelope)

    def wrong_hash(b: dict) -> None:  # type: ignore[type-arg]
        b["spec"]["content"]["payloadHash"]["value"] = "0" * 64

    def wrong_sig(b: dict) -> None:  # type: ignore[type-arg]
        sigs = b["spec"]["content"]["envelope"]["signatures"]
        sigs[0]["sig"] = base64.b64encode(base64.b64encode(b"\x30\x00")).decode()

    def wrong_type(b: dict) -> None:  # type: ignore[type-arg]
        b["spec"]["content"]["envelope"]["payloadType"] = "text/plain"

    def no_sigs(b: dict) -> None:  # type: ignore[type-arg]
        b["spec"]["content"]["envelope"]["signatures"] = []

    for mutate in (wrong_hash, wrong_sig, wrong_type, no_sigs):
        bad = _body_tampered(raw, mutate)
        with pytest.raises(Exception, match="intoto"):
            _validate_intoto_v002_body(bad, bad._dsse_envelope)  # type: ignore[attr-defined]


def test_intoto_v002_full_verification_and_identity() -> None:
    raw = (INTOTO / "bundle.sigstore.json").read_bytes()
    root = INTOTO / "trusted_root.json"
    ok = TrustAnchors(
        trusted_root=root,
        certificate_identity=IDENTITY,
        certificate_oidc_issuer="https://token.actions.githubusercontent.com",
    )
    assert verify_bundle(raw, ok, now=NOW).envelope is not None
    wrong = TrustAnchors(
        trusted_root=root,
        certificate_identity=IDENTITY + "x",
        certificate_oidc_issuer="https://token.actions.githubusercontent.com",
    )
    with pytest.raises(TrustloadError):
        verify_bundle(raw, wrong, now=NOW)
    # Another instance's root must not verify it.
    prod = INTEROP / "sigstore-python" / "trusted_roots" / "production.trusted_root.json"
    with pytest.raises(TrustloadError):
        verify_bundle(
            raw,
            TrustAnchors(
                trusted_root=prod,
                certificate_identity=IDENTITY,
                certificate_oidc_issuer="https://token.actions.githubusercontent.com",
            ),
            now=NOW,
        )


def _managed() -> tuple[bytes, bytes, bytes]:
    case = BV / "managed-key-happy-path"
    raw = (case / "bundle.sigstore.json").read_bytes()
    digest = hashlib.sha256((BV / "a.txt").read_bytes()).digest()
    return raw, (case / "key.pub").read_bytes(), digest


def test_managed_key_log_entry_checked_against_trusted_root() -> None:
    raw, pub, digest = _managed()
    prod = INTEROP / "sigstore-python" / "trusted_roots" / "production.trusted_root.json"
    staging = INTEROP / "sigstore-python" / "trusted_roots" / "staging.trusted_root.json"
    assert (
        verify_bundle(
            raw,
            TrustAnchors(public_keys=(pub,), trusted_root=prod),
            now=NOW,
            artifact_sha256=digest,
        ).mode
        == "key"
    )
    with pytest.raises(TrustloadError):  # the log's key is not in the staging root
        verify_bundle(
            raw,
            TrustAnchors(public_keys=(pub,), trusted_root=staging),
            now=NOW,
            artifact_sha256=digest,
        )


def test_managed_key_hint_is_never_trusted() -> None:
    raw, _pub, digest = _managed()
    with pytest.raises(TrustloadError) as info:
        verify_bundle(raw, TrustAnchors(), now=NOW, artifact_sha256=digest)
    assert info.value.code == ReasonCode.SIGNATURE_INVALID


def test_managed_key_entry_for_another_artifact() -> None:
    """The log entry must record this artifact: a wrong digest is refused before crypto."""
    raw, pub, _digest = _managed()
    prod = INTEROP / "sigstore-python" / "trusted_roots" / "production.trusted_root.json"
    doc = json.loads(raw)
    doc["messageSignature"].pop("messageDigest")
    with pytest.raises(TrustloadError):
        verify_bundle(
            json.dumps(doc).encode(),
            TrustAnchors(public_keys=(pub,), trusted_root=prod),
            now=NOW,
            artifact_sha256=hashlib.sha256(b"other").digest(),
        )


def test_managed_key_tampered_log_body_refused() -> None:
    raw, pub, digest = _managed()
    prod = INTEROP / "sigstore-python" / "trusted_roots" / "production.trusted_root.json"
    doc = json.loads(raw)
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    body["spec"]["data"]["hash"]["value"] = "0" * 64
    entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()
    with pytest.raises(TrustloadError):
        verify_bundle(
            json.dumps(doc).encode(),
            TrustAnchors(public_keys=(pub,), trusted_root=prod),
            now=NOW,
            artifact_sha256=digest,
        )
