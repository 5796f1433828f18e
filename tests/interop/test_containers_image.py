"""Walk ``shared/interop/containers-image``: genuine cosign signatures must verify offline.

``CASES.json``: 28 ``cosign save`` layouts (key, key + Rekor SET, Fulcio keyless + SET,
private PKI and their failure modes), each with its expected outcome and reason code,
through :func:`trustload.image.verify_image` and, for a sample, the ``verify-image``
command. ``blob-bundles/CASES.json``: 11 ``cosign sign-blob --bundle`` bundles through
:func:`trustload.engine.verify_files` and, for a sample, ``verify-files``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trustload.decision import ReasonCode
from trustload.engine import verify_files
from trustload.image import build_anchors, verify_image

REPO = Path(__file__).resolve().parents[2]
_CANDIDATES = [
    (REPO / ".." / "shared" / "interop" / "containers-image").resolve(),
    (REPO / ".." / ".." / "shared" / "interop" / "containers-image").resolve(),
]
ROOT = next((p for p in _CANDIDATES if (p / "CASES.json").is_file()), _CANDIDATES[0])
if not (ROOT / "CASES.json").is_file():  # pragma: no cover - no shared vectors here
    pytest.skip(f"containers-image vectors not present at {ROOT}", allow_module_level=True)

LAYOUT_CASES: list[dict[str, Any]] = json.loads((ROOT / "CASES.json").read_text())
BLOBS = ROOT / "blob-bundles"
BLOB_CASES: list[dict[str, Any]] = json.loads((BLOBS / "CASES.json").read_text())


def _paths(base: Path, trust: dict[str, Any], name: str) -> list[Path]:
    return [base / p for p in trust.get(name, [])]


def _trust_flags(base: Path, trust: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for name, flag in (
        ("keys", "--key"),
        ("ca_roots", "--ca-roots"),
        ("ca_intermediates", "--ca-intermediates"),
        ("rekor_keys", "--rekor-key"),
    ):
        for p in _paths(base, trust, name):
            flags += [flag, str(p)]
    if trust.get("certificate_identity"):
        flags += ["--certificate-identity", trust["certificate_identity"]]
    if trust.get("certificate_oidc_issuer"):
        flags += ["--certificate-oidc-issuer", trust["certificate_oidc_issuer"]]
    return flags


def _ref(case: dict[str, Any]) -> str:
    return f"oci-layout:{ROOT / case['layout']}@{case['image_digest']}"


def test_the_vectors_are_all_there() -> None:
    assert len(LAYOUT_CASES) == 28
    assert sum(c["expected"] == "permit" for c in LAYOUT_CASES) == 9
    assert len(BLOB_CASES) == 11
    assert sum(c["expect"] == "pass" for c in BLOB_CASES) == 4


@pytest.mark.parametrize("case", LAYOUT_CASES, ids=[c["id"] for c in LAYOUT_CASES])
def test_layout_case(case: dict[str, Any]) -> None:
    t = case["trust"]
    anchors = build_anchors(
        keys=_paths(ROOT, t, "keys"),
        certificate_identity=t.get("certificate_identity"),
        certificate_oidc_issuer=t.get("certificate_oidc_issuer"),
        ca_roots=_paths(ROOT, t, "ca_roots"),
        ca_intermediates=_paths(ROOT, t, "ca_intermediates"),
        rekor_keys=_paths(ROOT, t, "rekor_keys"),
    )
    decision = verify_image(_ref(case), anchors)
    assert decision.decision == case["expected"], decision.checks
    assert [str(r) for r in decision.reasons] == case["reasons"], decision.checks
    assert decision.artifact_digest == case["image_digest"]
    (check,) = decision.checks
    assert check.name == "image_signature"


CLI_SAMPLE = [
    "key-valid",
    "key-wrong-key",
    "key-rekor-missing-set",
    "fulcio-rekor-valid",
    "fulcio-wrong-issuer",
    "pki-valid",
]


@pytest.mark.parametrize("case_id", CLI_SAMPLE)
def test_layout_case_through_the_cli(case_id: str) -> None:
    case = next(c for c in LAYOUT_CASES if c["id"] == case_id)
    out = subprocess.run(
        [sys.executable, "-m", "trustload.cli.entry", "verify-image", _ref(case), "--json"]
        + _trust_flags(ROOT, case["trust"]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == (0 if case["expected"] == "permit" else 1), out.stderr
    doc = json.loads(out.stdout)
    assert doc["decision"] == case["expected"]
    assert doc["reasons"] == case["reasons"]
    assert doc["image_digest"] == case["image_digest"]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("case", BLOB_CASES, ids=[c["id"] for c in BLOB_CASES])
def test_blob_bundle_case(case: dict[str, Any]) -> None:
    t = case["trust"]
    decision = verify_files(
        BLOBS / case["artifact"],
        signature=BLOBS / case["bundle"],
        public_keys=_paths(BLOBS, t, "keys"),
        certificate_identity=t.get("certificate_identity"),
        certificate_oidc_issuer=t.get("certificate_oidc_issuer"),
        ca_roots=_paths(BLOBS, t, "ca_roots"),
        ca_intermediates=_paths(BLOBS, t, "ca_intermediates"),
        rekor_keys=_paths(BLOBS, t, "rekor_keys"),
    )
    expected = "permit" if case["expect"] == "pass" else "deny"
    assert decision.decision == expected, decision.checks
    assert [str(r) for r in decision.reasons] == case["reasons"], decision.checks
    (sig,) = [c for c in decision.checks if c.name == "signature"]
    assert sig.ok == (expected == "permit")


@pytest.mark.parametrize(
    "case_id", ["key-rekor-valid", "key-rekor-no-set", "fulcio-rekor-valid-cert-der"]
)
def test_blob_bundle_case_through_the_cli(case_id: str) -> None:
    case = next(c for c in BLOB_CASES if c["id"] == case_id)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trustload.cli.entry",
            "verify-files",
            str(BLOBS / case["artifact"]),
            "--signature",
            str(BLOBS / case["bundle"]),
            "--json",
        ]
        + _trust_flags(BLOBS, case["trust"]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == (0 if case["expect"] == "pass" else 1), out.stderr
    assert json.loads(out.stdout)["reasons"] == case["reasons"]


def test_tag_only_reference_is_a_usage_error() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trustload.cli.entry",
            "verify-image",
            "127.0.0.1:5000/serving:latest",
            "--key",
            str(ROOT / "trust" / "cosign.pub"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "pin by digest" in out.stderr


PRODUCTION_ROOT = ROOT.parent / "sigstore-python" / "trusted_roots" / "production.trusted_root.json"


@pytest.mark.parametrize(
    ("case_id", "identity", "expected", "reason"),
    [
        ("fulcio-rekor-valid", "mitr@redhat.com", "permit", None),
        ("fulcio-rekor-valid", "someone@example.com", "deny", "IMAGE_SIGNATURE_INVALID"),
        ("fulcio-missing-set", "mitr@redhat.com", "deny", "TRANSPARENCY_UNAVAILABLE"),
        ("fulcio-missing-chain", "mitr@redhat.com", "permit", None),
    ],
)
def test_keyless_layouts_with_the_public_good_trusted_root(
    case_id: str, identity: str, expected: str, reason: str | None
) -> None:
    """--trusted-root: Fulcio's chain (intermediate included, so the chain annotation is not
    needed) and Rekor's key come from the TrustedRoot; the SET is then required."""
    if not PRODUCTION_ROOT.is_file():  # pragma: no cover
        pytest.skip("no production trusted root in the shared vectors")
    case = next(c for c in LAYOUT_CASES if c["id"] == case_id)
    anchors = build_anchors(
        certificate_identity=identity,
        certificate_oidc_issuer="https://github.com/login/oauth",
        trusted_root=PRODUCTION_ROOT,
    )
    decision = verify_image(_ref(case), anchors)
    assert decision.decision == expected, decision.checks
    assert [str(r) for r in decision.reasons] == ([reason] if reason else [])


COSIGN_TESTDATA = ROOT.parent / "cosign" / "pkg" / "cosign" / "testdata"
ATTESTED = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"


@pytest.mark.parametrize(
    ("digest", "identity", "code"),
    [
        (ATTESTED, "cody@soyland.com", None),
        (ATTESTED, "wrong@example.com", "ATTESTATION_INVALID"),
        ("sha256:" + "a0" * 32, "cody@soyland.com", "ATTESTATION_SUBJECT_MISMATCH"),
    ],
    ids=["genuine", "wrong-identity", "copied-onto-another-image"],
)
def test_genuine_cosign3_attestation_bundle_referrer(
    digest: str, identity: str, code: str | None
) -> None:
    """cosign's own ``attest`` bundle (new bundle format, keyless, Rekor v1 dsse entry) as a
    referrer of ``digest``, through the pure image attestation check; the last case is a
    referrer manifest claiming another image as its subject with the genuine bundle inside."""
    from datetime import UTC, datetime, timedelta

    from trustload.checks.image import check_image_attestation, check_image_signature
    from trustload.facts import Expectations
    from trustload.oci.evidence import ImageEvidence, ReferrerEvidence

    bundle = COSIGN_TESTDATA / "oci-attestation.sigstore.json"
    if not bundle.is_file():  # pragma: no cover
        pytest.skip("no cosign testdata in the shared vectors")
    evidence = ImageEvidence(
        digest,
        referrers=(ReferrerEvidence("sha256:" + "f" * 64, digest, bundle.read_bytes(), None),),
    )
    anchors = build_anchors(
        certificate_identity=identity,
        certificate_oidc_issuer="https://github.com/login/oauth",
        trusted_root=COSIGN_TESTDATA / "trusted_root_pgi.json",
    )
    now = datetime.now(UTC)
    results = check_image_attestation(
        evidence,
        anchors,
        predicate_type="https://cosign.sigstore.dev/attestation/v1",
        expect=Expectations(),
        now=now,
        clock_skew=timedelta(seconds=60),
    )
    failing = [str(r.code) for r in results if not r.ok]
    assert failing == ([code] if code else []), results
    # An attestation is not a signature: the same referrer never passes the image check.
    sig = check_image_signature(evidence, anchors, now=now)
    assert sig.code == ReasonCode.IMAGE_SIGNATURE_INVALID
