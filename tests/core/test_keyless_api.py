"""``trustload.verify_files`` in keyless mode (Sigstore bundle + pinned identity + an
explicit trusted root), over a real conformance vector, fully offline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import trustload
from tests.support.interop import interop_dir
from trustload.decision import ReasonCode

INTEROP = interop_dir()
ASSETS = INTEROP / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
ROOT = INTEROP / "sigstore-python" / "trusted_roots" / "production.trusted_root.json"
IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"

if not (ASSETS / "a.txt").is_file() or not ROOT.is_file():  # pragma: no cover
    pytest.skip(f"interop vectors not present at {INTEROP}", allow_module_level=True)


@pytest.mark.parametrize(
    ("identity", "issuer", "code"),
    [
        (IDENTITY, ISSUER, None),
        (IDENTITY + "x", ISSUER, ReasonCode.SIGNATURE_INVALID),
        (IDENTITY, "https://accounts.google.com", ReasonCode.SIGNATURE_INVALID),
    ],
)
def test_keyless_bundle_identity_is_pinned(identity, issuer, code):
    decision = trustload.verify_files(
        ASSETS / "a.txt",
        signature=ASSETS / "happy-path-v0.1" / "bundle.sigstore.json",
        certificate_identity=identity,
        certificate_oidc_issuer=issuer,
        trusted_root=ROOT,
        now=datetime.now(UTC),
    )
    assert decision.permitted is (code is None), decision.to_json()
    assert decision.reasons == ([] if code is None else [code])
