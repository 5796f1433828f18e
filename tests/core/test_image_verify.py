"""verify-image beyond the genuine vectors: hostile layouts, bundle referrers, attestations.

Every layout is written with throwaway keys by ``tests.support.cosign_layout`` and read
back through the real :class:`~trustload.oci.layout.LayoutReader`; each hostile case must
end in a denial with its reason code, in bounded time, without an exception.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.crypto.helpers import envelope_json
from tests.support.cosign_layout import (
    Layer,
    LayoutWriter,
    att_layer,
    cosign_sign,
    dsse_bundle,
    image_manifest,
    message_bundle,
    signed_layout,
    simple_signing,
    statement,
)
from trustload.checks.image import COSIGN_SIGN_PREDICATE, predicate_uri
from trustload.crypto.keys import PrivateKey, public_pem
from trustload.decision import Decision, ReasonCode
from trustload.facts import Expectations
from trustload.formats.slsa import SLSA_V1
from trustload.image import AttestationRequest, build_anchors, verify_image
from trustload.oci.layout import LayoutReader

SIG = "dev.cosignproject.cosign/signature"


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pub(tmp_path: Path, key: PrivateKey, name: str = "cosign.pub") -> Path:
    p = tmp_path / name
    p.write_bytes(public_pem(key.public_key()))
    return p


def _verify(tmp_path: Path, layout: Path, digest: str, key: PrivateKey, **kw: object) -> Decision:
    anchors = build_anchors(keys=[_pub(tmp_path, key)])
    return verify_image(f"oci-layout:{layout}@{digest}", anchors, **kw)  # type: ignore[arg-type]


def _denied(decision: Decision, code: ReasonCode) -> None:
    assert decision.decision == "deny", decision.checks
    assert code in decision.reasons, decision.checks


def test_a_signed_layout_permits_and_an_untrusted_key_denies(
    tmp_path: Path, key: PrivateKey
) -> None:
    layout, digest = signed_layout(tmp_path / "img", key)
    assert _verify(tmp_path, layout, digest, key).permitted
    other = ec.generate_private_key(ec.SECP256R1())
    _denied(_verify(tmp_path, layout, digest, other), ReasonCode.IMAGE_SIGNATURE_INVALID)


def test_rsa_key_mode(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    layout, digest = signed_layout(tmp_path / "img", key)
    assert _verify(tmp_path, layout, digest, key).permitted


def test_payload_naming_another_digest_is_denied(tmp_path: Path, key: PrivateKey) -> None:
    other = "sha256:" + "ab" * 32
    payload = simple_signing(other)
    layout, digest = signed_layout(
        tmp_path / "img",
        key,
        sig_layers=[Layer(payload, annotations={SIG: cosign_sign(key, payload)})],
    )
    d = _verify(tmp_path, layout, digest, key)
    _denied(d, ReasonCode.IMAGE_SIGNATURE_INVALID)
    assert "another image" in d.checks[0].detail


def test_a_payload_of_another_type_is_denied(tmp_path: Path, key: PrivateKey) -> None:
    layout, digest = signed_layout(tmp_path / "probe", key)
    doc = json.loads(simple_signing(digest))
    doc["critical"]["type"] = "atomic container signature"
    payload = json.dumps(doc).encode()
    layout, digest2 = signed_layout(
        tmp_path / "probe",
        key,
        sig_layers=[Layer(payload, annotations={SIG: cosign_sign(key, payload)})],
    )
    assert digest2 == digest
    _denied(_verify(tmp_path, layout, digest, key), ReasonCode.IMAGE_SIGNATURE_INVALID)


@pytest.mark.parametrize(
    "annotations",
    [
        {SIG: "%%%not base64%%%"},
        {SIG: "A" * 200_000},
        {SIG: "", "dev.sigstore.cosign/certificate": "garbage"},
        {SIG: 42},
        ["not", "a", "map"],
    ],
    ids=["not-base64", "huge", "empty-and-garbage-cert", "not-a-string", "not-a-map"],
)
def test_garbage_annotations_are_a_denial(
    tmp_path: Path, key: PrivateKey, annotations: object
) -> None:
    w = LayoutWriter(tmp_path / "img")
    digest = w.add(image_manifest("img"), "image")
    payload = simple_signing(digest)
    doc = json.loads(w.manifest([Layer(payload)]))
    doc["layers"][0]["annotations"] = annotations
    w.add(json.dumps(doc).encode(), "sigs")
    w.write()
    _denied(_verify(tmp_path, w.root, digest, key), ReasonCode.IMAGE_SIGNATURE_INVALID)


def test_ten_thousand_layers_are_refused_in_bounded_time(tmp_path: Path, key: PrivateKey) -> None:
    w = LayoutWriter(tmp_path / "img")
    digest = w.add(image_manifest("img"), "image")
    payload = simple_signing(digest)
    layer = Layer(payload, annotations={SIG: cosign_sign(key, payload)})
    w.add(w.manifest([layer] * 10_000), "sigs")
    w.write()
    start = time.perf_counter()
    d = _verify(tmp_path, w.root, digest, key)
    assert time.perf_counter() - start < 10
    _denied(d, ReasonCode.IMAGE_SIGNATURE_INVALID)
    assert "10000 layers" in d.checks[0].detail


def test_a_huge_signature_layer_is_not_read(tmp_path: Path, key: PrivateKey) -> None:
    w = LayoutWriter(tmp_path / "img")
    digest = w.add(image_manifest("img"), "image")
    huge = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    w.add(w.manifest([Layer(huge, annotations={SIG: cosign_sign(key, huge)})]), "sigs")
    w.write()
    d = _verify(tmp_path, w.root, digest, key)
    _denied(d, ReasonCode.IMAGE_SIGNATURE_INVALID)
    assert "limit" in d.checks[0].detail


def test_a_blob_that_is_not_its_digest_is_refused(tmp_path: Path, key: PrivateKey) -> None:
    layout, digest = signed_layout(tmp_path / "img", key)
    payload = simple_signing(digest)
    from tests.support.cosign_layout import digest_of

    blob = layout / "blobs" / "sha256" / digest_of(payload).split(":")[1]
    blob.write_bytes(payload.replace(b"127.0.0.1", b"127.0.0.9"))
    d = _verify(tmp_path, layout, digest, key)
    _denied(d, ReasonCode.IMAGE_SIGNATURE_INVALID)
    assert "hashes to" in d.checks[0].detail


def test_an_image_manifest_that_is_not_its_digest_is_digest_mismatch(
    tmp_path: Path, key: PrivateKey
) -> None:
    layout, digest = signed_layout(tmp_path / "img", key)
    (layout / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(image_manifest("other"))
    _denied(_verify(tmp_path, layout, digest, key), ReasonCode.DIGEST_MISMATCH)


def test_a_symlinked_blob_is_refused(tmp_path: Path, key: PrivateKey) -> None:
    layout, digest = signed_layout(tmp_path / "img", key)
    path = layout / "blobs" / "sha256" / digest.split(":")[1]
    target = tmp_path / "elsewhere"
    target.write_bytes(path.read_bytes())
    path.unlink()
    os.symlink(target, path)
    d = _verify(tmp_path, layout, digest, key)
    _denied(d, ReasonCode.IMAGE_SIGNATURE_INVALID)
    assert "cannot open" in d.checks[0].detail


def test_other_media_types_are_ignored(tmp_path: Path, key: PrivateKey) -> None:
    layout, digest = signed_layout(tmp_path / "probe", key)
    payload = simple_signing(digest)
    good = Layer(payload, annotations={SIG: cosign_sign(key, payload)})
    junk = Layer(b"hello", "text/plain", {SIG: "garbage"})
    layout, _ = signed_layout(tmp_path / "probe", key, sig_layers=[junk, good])
    assert _verify(tmp_path, layout, digest, key).permitted


def test_cosign3_message_bundle_referrer_permits(tmp_path: Path, key: PrivateKey) -> None:
    layout, digest = signed_layout(tmp_path / "probe", key)
    layout, _ = signed_layout(
        tmp_path / "probe", key, sig_layers=[], referrers=[message_bundle(key, digest)]
    )
    d = _verify(tmp_path, layout, digest, key)
    assert d.permitted, d.checks
    assert "referrer" in d.checks[0].detail
    other = ec.generate_private_key(ec.SECP256R1())
    _denied(_verify(tmp_path, layout, digest, other), ReasonCode.IMAGE_SIGNATURE_INVALID)


def test_cosign3_dsse_bundle_must_be_a_signature_statement(tmp_path: Path, key: PrivateKey) -> None:
    layout, digest = signed_layout(tmp_path / "probe", key)
    sign_stmt = envelope_json(key, statement(digest, COSIGN_SIGN_PREDICATE, {}))
    slsa_stmt = envelope_json(key, statement(digest, SLSA_V1, {}))
    layout, _ = signed_layout(
        tmp_path / "probe", key, sig_layers=[], referrers=[dsse_bundle(slsa_stmt)]
    )
    _denied(_verify(tmp_path, layout, digest, key), ReasonCode.IMAGE_SIGNATURE_INVALID)
    layout, _ = signed_layout(
        tmp_path / "probe", key, sig_layers=[], referrers=[dsse_bundle(sign_stmt)]
    )
    assert _verify(tmp_path, layout, digest, key).permitted


def test_a_referrers_index_pointing_at_another_subject_is_not_trusted(
    tmp_path: Path, key: PrivateKey
) -> None:
    """The fallback tag's index lists a validly signed bundle whose manifest's own subject
    is another image: it must not count (the index's claim is never trusted)."""
    w = LayoutWriter(tmp_path / "img")
    digest = w.add(image_manifest("img"), "image")
    other = "sha256:" + "cd" * 32
    referrer = w.manifest(
        [Layer(message_bundle(key, digest), "application/vnd.dev.sigstore.bundle.v0.3+json")],
        subject=other,
    )
    ref_digest = w.blob(referrer)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "size": len(referrer),
                    "digest": ref_digest,
                    "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                }
            ],
        }
    ).encode()
    w.entries.append(
        {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "size": len(index),
            "digest": w.blob(index),
            "annotations": {"org.opencontainers.image.ref.name": digest.replace(":", "-")},
        }
    )
    w.write()
    assert [r.digest for r in LayoutReader(w.root).referrers(digest)] == [ref_digest]
    d = _verify(tmp_path, w.root, digest, key)
    _denied(d, ReasonCode.IMAGE_SIGNATURE_INVALID)
    assert "subject" in d.checks[0].detail


def _attested(
    tmp_path: Path, key: PrivateKey, subject_digest: str | None = None, git_sha: str = "a" * 40
) -> tuple[Path, str, Path]:
    from trustload.crypto.keys import generate_keypair
    from trustload.signing import attest_bytes

    key_path, pub = generate_keypair(tmp_path / "att")
    from tests.crypto.helpers import load_key

    att_key = load_key(key_path)
    layout, digest = signed_layout(tmp_path / "probe", att_key)
    envelope = attest_bytes(
        subject_name="image",
        artifact_digest=subject_digest or digest,
        key_path=key_path,
        git_sha=git_sha,
        container_digest="sha256:" + "c" * 64,
        dataset_snapshot="s3://data@v1",
    )
    layout, _ = signed_layout(
        tmp_path / "probe", att_key, att_layers=[att_layer(envelope, SLSA_V1)]
    )
    return layout, digest, pub


def _attest(layout: Path, digest: str, pub: Path, type_: str, git_sha: str = "a" * 40) -> Decision:
    uri = predicate_uri(type_)
    assert uri is not None
    return verify_image(
        f"oci-layout:{layout}@{digest}",
        build_anchors(keys=[pub]),
        attestation=AttestationRequest(
            uri, Expectations(git_sha, "sha256:" + "c" * 64, "s3://data@v1")
        ),
    )


def test_att_layer_attestation_passes_the_seed_checks(tmp_path: Path, key: PrivateKey) -> None:
    layout, digest, pub = _attested(tmp_path, key)
    d = _attest(layout, digest, pub, "slsaprovenance1")
    assert d.permitted, d.checks
    assert {c.name for c in d.checks} >= {
        "image_signature",
        "attestation",
        "attestation_subject",
        "attestation_coherence",
    }
    _denied(
        _attest(layout, digest, pub, "slsaprovenance1", git_sha="b" * 40),
        ReasonCode.ATTESTATION_MISMATCH,
    )
    _denied(_attest(layout, digest, pub, "slsaprovenance"), ReasonCode.ATTESTATION_MISSING)
    assert _attest(layout, digest, pub, SLSA_V1).permitted


def test_att_layer_for_another_subject_is_a_subject_mismatch(
    tmp_path: Path, key: PrivateKey
) -> None:
    layout, digest, pub = _attested(tmp_path, key, subject_digest="sha256:" + "e" * 64)
    _denied(
        _attest(layout, digest, pub, "slsaprovenance1"), ReasonCode.ATTESTATION_SUBJECT_MISMATCH
    )


def test_attestation_bundle_referrer(tmp_path: Path, key: PrivateKey) -> None:
    from trustload.decision import utc_now
    from trustload.formats.slsa import build_predicate

    layout, digest = signed_layout(tmp_path / "probe", key)
    predicate = build_predicate(
        subject_name="image",
        git_sha="a" * 40,
        container_digest="sha256:" + "c" * 64,
        dataset_snapshot="s3://data@v1",
        not_before=None,
        not_after=None,
        invocation_id="urn:uuid:1",
        started_on=utc_now(),
    )
    bundle = dsse_bundle(envelope_json(key, statement(digest, SLSA_V1, predicate)))
    layout, _ = signed_layout(tmp_path / "probe", key, referrers=[bundle])
    pub = _pub(tmp_path, key)
    assert _attest(layout, digest, pub, "slsaprovenance1").permitted


def test_predicate_type_names_follow_cosign() -> None:
    assert predicate_uri("slsaprovenance") == "https://slsa.dev/provenance/v0.2"
    assert predicate_uri("slsaprovenance1") == "https://slsa.dev/provenance/v1"
    assert predicate_uri("https://example.com/p/v1") == "https://example.com/p/v1"
    assert predicate_uri("no-such-type") is None


def test_att_layer_with_required_rekor(tmp_path: Path) -> None:
    """With --rekor-key, an .att layer needs a SET by that log over its own payload."""
    import base64 as b64mod

    from tests.crypto.helpers import load_key
    from tests.support.cosign_layout import dsse_entry, rekor_set
    from trustload.crypto.keys import generate_keypair
    from trustload.signing import attest_bytes

    key_path, pub = generate_keypair(tmp_path / "att")
    att_key = load_key(key_path)
    log_key = ec.generate_private_key(ec.SECP256R1())
    log_pub = _pub(tmp_path, log_key, "rekor.pub")

    def layout_with(set_for: bytes | None, name: str) -> tuple[Path, str]:
        layout, digest = signed_layout(tmp_path / name, att_key)
        envelope = attest_bytes(
            subject_name="image",
            artifact_digest=digest,
            key_path=key_path,
            git_sha="a" * 40,
            container_digest="sha256:" + "c" * 64,
            dataset_snapshot="s3://data@v1",
        )
        payload = b64mod.b64decode(json.loads(envelope)["payload"])
        layer = att_layer(envelope, SLSA_V1)
        if set_for is not None:
            body = dsse_entry(payload if set_for == b"self" else set_for, att_key)
            layer.annotations["dev.sigstore.cosign/bundle"] = rekor_set(
                log_key, body, int(time.time()) - 60
            )
        return signed_layout(tmp_path / name, att_key, att_layers=[layer])[0], digest

    def run(layout: Path, digest: str) -> Decision:
        # The image's own .sig has no SET either, so only the attestation checks matter here.
        d = verify_image(
            f"oci-layout:{layout}@{digest}",
            build_anchors(keys=[pub], rekor_keys=[log_pub]),
            attestation=AttestationRequest(SLSA_V1, Expectations()),
        )
        return d

    layout, digest = layout_with(b"self", "ok")
    checks = {c.name: c for c in run(layout, digest).checks}
    assert checks["image_signature"].code == ReasonCode.TRANSPARENCY_UNAVAILABLE
    assert checks["attestation"].ok, checks["attestation"]
    layout, digest = layout_with(None, "noset")
    checks = {c.name: c for c in run(layout, digest).checks}
    assert checks["attestation"].code == ReasonCode.TRANSPARENCY_UNAVAILABLE
    layout, digest = layout_with(b"another payload", "other")
    checks = {c.name: c for c in run(layout, digest).checks}
    assert checks["attestation"].code == ReasonCode.ATTESTATION_INVALID
    assert "another attestation payload" in checks["attestation"].detail


def test_garbage_blob_bundle_is_signature_invalid(tmp_path: Path, key: PrivateKey) -> None:
    from trustload.engine import verify_files

    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    for i, bad in enumerate(
        [
            b'{"base64Signature": "!!!"}',
            b'{"base64Signature": "AAAA", "rekorBundle": []}',
            b'{"base64Signature": "AAAA", "cert": "bm90IGEgY2VydA=="}',
        ]
    ):
        bundle = tmp_path / f"b{i}.bundle"
        bundle.write_bytes(bad)
        d = verify_files(model, signature=bundle, public_keys=[_pub(tmp_path, key)])
        _denied(d, ReasonCode.SIGNATURE_INVALID)


def test_a_deeply_nested_manifest_in_the_layout_is_no_traceback(
    tmp_path: Path, key: PrivateKey
) -> None:
    """Referrer discovery reads every manifest of the layout: a hostile one nesting 100 000
    levels deep (a RecursionError for a naive parser) must be skipped, not crash."""
    w = LayoutWriter(tmp_path / "img")
    digest = w.add(image_manifest("img"), "image")
    w.add(b"[" * 100_000 + b"]" * 100_000, None)
    w.write()
    d = _verify(tmp_path, w.root, digest, key)
    _denied(d, ReasonCode.IMAGE_SIGNATURE_INVALID)
    assert LayoutReader(w.root).referrers(digest) == []
