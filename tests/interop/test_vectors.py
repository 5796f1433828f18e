"""Walk ../shared/interop/CASES.json: every external vector must give its expected outcome.

Each case is checked through trustload's own public verification functions:
``verify_bundle`` (Sigstore bundles, cosign managed keys), ``check_attestation``
(DSSE / in-toto / SLSA), ``check_model_signature`` (model-signing) and the SLSA policy
check. Fail cases must fail for the right reason where the reason is meaningful.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.interop import interop_dir
from trustload.checks.attestation import check_attestation, verify_statement
from trustload.checks.signature import check_model_signature
from trustload.crypto.verify import verify_bundle
from trustload.decision import ReasonCode
from trustload.digests import ModelLayout
from trustload.errors import TrustloadError
from trustload.facts import Expectations, TrustAnchors
from trustload.formats.slsa import check_slsa_policy

REPO = Path(__file__).resolve().parents[2]
INTEROP = interop_dir()
CASES_FILE = INTEROP / "CASES.json"

if not CASES_FILE.is_file():  # pragma: no cover - environment without the shared vectors
    pytest.skip(f"interop vectors not present at {INTEROP}", allow_module_level=True)

DOC = json.loads(CASES_FILE.read_text())
DEFAULTS: dict[str, Any] = DOC["defaults"]
CASES: list[dict[str, Any]] = [{**DEFAULTS, **c} for c in DOC["cases"]]
NOW = datetime.now(UTC)

# Where the reason is meaningful, the denial must carry this code.
EXPECTED_CODE: dict[str, ReasonCode] = {
    "conformance/rekor2-no-inclusion-proof_fail": ReasonCode.TRANSPARENCY_UNAVAILABLE,
    "conformance/intoto-missing-inclusion-proof_fail": ReasonCode.TRANSPARENCY_UNAVAILABLE,
    "sigstore-python/bundle_no_checkpoint": ReasonCode.TRANSPARENCY_UNAVAILABLE,
    "cosign/oci-attestation-wrong-digest": ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
    "cosign/blob-attestation/incorrect-blob": ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
    "cosign/blob-attestation/empty-subject": ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
    "cosign/blob-attestation/missing-sha256": ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
    "cosign/blob-attestation/multiple-subjects-invalid": ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
    "cosign/oci-attestation-wrong-identity": ReasonCode.ATTESTATION_INVALID,
    "conformance/dsse-invalid-sig_fail": ReasonCode.ATTESTATION_INVALID,
    "conformance/dsse-mismatch-envelope_fail": ReasonCode.ATTESTATION_INVALID,
    "conformance/intoto-expired-certificate_fail": ReasonCode.ATTESTATION_INVALID,
    "model-transparency/v1.1.0-sigstore-wrong-identity": ReasonCode.SIGNATURE_INVALID,
    "model-transparency/v1.1.0-elliptic-key-wrong-key": ReasonCode.SIGNATURE_INVALID,
    "model-transparency/v1.1.0-elliptic-key-tampered-model": ReasonCode.SIGNATURE_INVALID,
    "slsa-verifier/bcr/MODULE-wrong-signer.bazel": ReasonCode.ATTESTATION_INVALID,
    "slsa-verifier/npm/gundam-visor-cli-v1-tag-invalidsigprov": ReasonCode.ATTESTATION_INVALID,
    "conformance/signature-mismatch_fail": ReasonCode.SIGNATURE_INVALID,
    "conformance/wrong-material_fail": ReasonCode.SIGNATURE_INVALID,
    "conformance/managed-key-wrong-key_fail": ReasonCode.SIGNATURE_INVALID,
    "conformance/managed-key-no-key_fail": ReasonCode.SIGNATURE_INVALID,
    "slsa-verifier/gha_generic/v2.1.0/workflow_dispatch-wrong-source": (
        ReasonCode.ATTESTATION_MISMATCH
    ),
}


# For the rest, the kind decides the code: a bad bundle is a bad signature, a bad
# attestation envelope an invalid attestation.
DEFAULT_CODE: dict[str, tuple[ReasonCode, ...]] = {
    "sigstore-bundle": (ReasonCode.SIGNATURE_INVALID, ReasonCode.TRANSPARENCY_UNAVAILABLE),
    "cosign-keyed": (ReasonCode.SIGNATURE_INVALID, ReasonCode.ATTESTATION_SUBJECT_MISMATCH),
    "dsse-attestation": (ReasonCode.ATTESTATION_INVALID, ReasonCode.ATTESTATION_SUBJECT_MISMATCH),
    "model-signing": (ReasonCode.SIGNATURE_INVALID,),
    "slsa-provenance": (ReasonCode.ATTESTATION_INVALID, ReasonCode.ATTESTATION_MISMATCH),
}

# And the detail must name the actual cause for these.
DETAIL_HINT: dict[str, str] = {
    "conformance/intoto-expired-certificate_fail": "not valid at validation time",
    "conformance/integrated-time-in-future_fail": "not valid at validation time",
    "conformance/signature-mismatch_fail": "Signature is invalid",
    "conformance/dsse-invalid-sig_fail": "DSSE: invalid signature",
    "conformance/dsse-mismatch-envelope_fail": "payload hash does not match",
    "conformance/set-invalid-signature_fail": "SET",
    "conformance/invalid-checkpoint-signature_fail": "checkpoint",
    "conformance/inclusion-proof-corrupted-hash_fail": "inclusion proof",
    "conformance/bundle-unknown-version_fail": "mediaType",
    "conformance/bundle-malformed-json_fail": "invalid JSON",
    "conformance/managed-key-no-key_fail": "no usable trusted key",
    "sigstore-python/bundle_cve_2022_36056": "inconsistent",
    "sigstore-python/bundle.txt-wrong-identity": "SANs do not match",
    "model-transparency/v1.1.0-elliptic-key-tampered-model": "signme-1",
    "slsa-verifier/gha_generic/v2.1.0/workflow_dispatch-wrong-source": "source mismatch",
    "slsa-verifier/npm/gundam-visor-cli-v1-tag-invalidsigprov": "invalid signature",
}


# A private CA is trusted only with a pinned leaf identity (issue 8): the vector names
# none, so pin the one its leaf carries. Without the pin it must be denied.
PINNED_CA_IDENTITY: dict[str, str] = {"model-transparency/v1.1.0-certificate": "intermediate-ca"}


def _anchors(case: dict[str, Any]) -> TrustAnchors:
    identity = case["identity"]
    if identity is None and case["ca_certs"]:
        identity = PINNED_CA_IDENTITY[case["id"]]
    return TrustAnchors(
        public_keys=tuple(
            [(INTEROP / case["public_key"]).read_bytes()] if case["public_key"] else []
        ),
        certificate_identity=identity,
        certificate_oidc_issuer=case["issuer"],
        trusted_root=(INTEROP / case["trusted_root"]) if case["trusted_root"] else None,
        ca_certs=tuple((INTEROP / p).read_bytes() for p in case["ca_certs"]),
        require_tlog=bool(case["require_tlog"]),
    )


def _artifact_digest(case: dict[str, Any]) -> str:
    art: str = case["artifact"]
    if art.startswith(("sha256:", "sha512:")):
        return art
    return "sha256:" + hashlib.sha256((INTEROP / art).read_bytes()).hexdigest()


def _run(case: dict[str, Any]) -> tuple[bool, ReasonCode | None, str]:
    """(passed, first failing code, detail) through the product's public APIs."""
    anchors = _anchors(case)
    bundle = (INTEROP / case["bundle"]).read_bytes()
    kind = case["kind"]
    if kind == "model-signing":
        layout = ModelLayout.from_path(INTEROP / case["artifact"], ignore=case["ignore_paths"])
        outcome = check_model_signature(layout, bundle, anchors, now=NOW)
        r = outcome.result
        return r.ok, r.code, r.detail
    is_dsse = b'"dsseEnvelope"' in bundle or case["bundle_format"] == "dsse-envelope"
    if is_dsse:
        results, facts = check_attestation(
            bundle,
            anchors,
            artifact_digest=_artifact_digest(case),
            expect=Expectations(),
            now=NOW,
            clock_skew=timedelta(minutes=5),
        )
        failed = [r for r in results if not r.ok]
        if failed:
            return False, failed[0].code, "; ".join(r.detail for r in failed)
        assert facts is not None
        if case.get("predicate_type") and facts.predicate_type != case["predicate_type"]:
            return False, ReasonCode.ATTESTATION_INVALID, f"predicateType {facts.predicate_type}"
        if case.get("slsa_policy"):
            _st, prov, _signer = verify_statement(bundle, anchors, now=NOW)
            problems = check_slsa_policy(
                prov,
                source_uri=case["slsa_policy"].get("source_uri"),
                builder_id=case["slsa_policy"].get("builder_id"),
            )
            if problems:
                return False, ReasonCode.ATTESTATION_MISMATCH, "; ".join(problems)
        return True, None, ""
    digest = _artifact_digest(case)
    assert digest.startswith("sha256:")
    try:
        verify_bundle(bundle, anchors, now=NOW, artifact_sha256=bytes.fromhex(digest[7:]))
    except TrustloadError as exc:
        return False, exc.code, exc.message
    return True, None, ""


def test_case_count() -> None:
    assert len(CASES) == 60
    assert sum(c["expect"] == "pass" for c in CASES) == 22


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vector(case: dict[str, Any]) -> None:
    ok, code, detail = _run(case)
    if case["expect"] == "pass":
        assert ok, f"{case['id']} should pass: {code} {detail}"
    else:
        assert not ok, f"{case['id']} should fail ({case['why']})"
        assert code is not None
        if case["id"] in EXPECTED_CODE:
            assert code == EXPECTED_CODE[case["id"]], f"{case['id']}: {code} {detail}"
        else:
            assert code in DEFAULT_CODE[case["kind"]], f"{case['id']}: {code} {detail}"
        if case["id"] in DETAIL_HINT:
            assert DETAIL_HINT[case["id"]] in detail, f"{case['id']}: {detail}"
