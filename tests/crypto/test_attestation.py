"""Attestations: every reason code fires for its own cause, and only for it."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.crypto.helpers import NOW, envelope_json, load_key
from trustload.checks.attestation import check_attestation
from trustload.decision import CheckResult, ReasonCode
from trustload.digests import measure
from trustload.facts import Expectations, TrustAnchors
from trustload.signing import attest, attest_bytes

GIT = "0123456789abcdef0123456789abcdef01234567"
CONTAINER = "sha256:" + "c" * 64
DATASET = "s3://datasets/imagenet@2024-06-01"
SKEW = timedelta(minutes=2)
EXPECT = Expectations(git_sha=GIT, container_digest=CONTAINER, dataset_snapshot=DATASET)


def make(key: Path, digest: str, **kw: Any) -> bytes:
    args: dict[str, Any] = {
        "subject_name": "resnet",
        "artifact_digest": digest,
        "key_path": key,
        "git_sha": GIT,
        "container_digest": CONTAINER,
        "dataset_snapshot": DATASET,
        "not_before": NOW - timedelta(days=1),
        "not_after": NOW + timedelta(days=30),
    }
    args.update(kw)
    return attest_bytes(**args)


def run(
    env: bytes | None, pub: Path, digest: str, expect: Expectations = EXPECT, now: Any = NOW
) -> tuple[dict[str, CheckResult], Any]:
    results, facts = check_attestation(
        env,
        TrustAnchors(public_keys=(pub.read_bytes(),)),
        artifact_digest=digest,
        expect=expect,
        now=now,
        clock_skew=SKEW,
    )
    return {r.name: r for r in results}, facts


def codes(results: dict[str, CheckResult]) -> set[ReasonCode]:
    return {r.code for r in results.values() if r.code is not None}


def test_round_trip_and_facts(model_dir: Path, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    key, pub = keypair
    out = attest(
        model_dir,
        key,
        git_sha=GIT,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
        not_after=NOW + timedelta(days=1),
        out=tmp_path / "att.json",
    )
    digest = measure(model_dir).digest
    results, facts = run(out.read_bytes(), pub, digest)
    assert set(results) == {
        "attestation",
        "attestation_subject",
        "attestation_coherence",
        "attestation_validity",
    }
    assert all(r.ok for r in results.values()), results
    assert (
        facts.git_sha == GIT
        and facts.container_digest == CONTAINER
        and facts.dataset_snapshot == DATASET
    )
    assert facts.predicate_type == "https://slsa.dev/provenance/v1"
    assert facts.subjects == (("resnet", digest),)
    assert facts.not_after is not None and facts.not_before is None
    assert facts.signer is not None and facts.signer.startswith("sha256:")
    env = json.loads(out.read_bytes())
    assert env["payloadType"] == "application/vnd.in-toto+json"
    st = json.loads(base64.b64decode(env["payload"]))
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {d["name"] for d in deps} == {"source", "serving-container", "dataset-snapshot"}
    assert "notAfter" in st["predicate"]["buildDefinition"]["internalParameters"]["validity"]


def test_missing(keypair: tuple[Path, Path]) -> None:
    for env in (None, b"", b"\n"):
        results, facts = run(env, keypair[1], "sha256:" + "a" * 64)
        assert codes(results) == {ReasonCode.ATTESTATION_MISSING} and facts is None


def test_subject_mismatch_only(keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    results, _ = run(make(key, "sha256:" + "a" * 64), pub, "sha256:" + "b" * 64)
    assert codes(results) == {ReasonCode.ATTESTATION_SUBJECT_MISMATCH}
    assert not results["attestation_subject"].ok and results["attestation"].ok


@pytest.mark.parametrize("field", ["git_sha", "container_digest", "dataset_snapshot"])
def test_each_coherence_field(keypair: tuple[Path, Path], field: str) -> None:
    key, pub = keypair
    digest = "sha256:" + "a" * 64
    expect = Expectations(
        **{**EXPECT.__dict__, field: "sha256:" + "d" * 64 if field != "git_sha" else "f" * 40}
    )
    results, _ = run(make(key, digest), pub, digest, expect=expect)
    assert codes(results) == {ReasonCode.ATTESTATION_MISMATCH}
    assert field in results["attestation_coherence"].detail
    # A None expectation is not checked.
    results, _ = run(
        make(key, digest), pub, digest, expect=Expectations(**{**EXPECT.__dict__, field: None})
    )
    assert not codes(results)


def test_container_digest_forms_agree(keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    digest = "sha256:" + "a" * 64
    expect = Expectations(container_digest="registry.local/serving@" + CONTAINER)
    results, _ = run(make(key, digest), pub, digest, expect=expect)
    assert not codes(results)


def test_validity_window_with_skew(keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    digest = "sha256:" + "a" * 64
    expired = make(
        key, digest, not_before=NOW - timedelta(days=10), not_after=NOW - timedelta(minutes=5)
    )
    results, _ = run(expired, pub, digest)
    assert codes(results) == {ReasonCode.ATTESTATION_EXPIRED}
    future = make(
        key, digest, not_before=NOW + timedelta(hours=1), not_after=NOW + timedelta(days=1)
    )
    assert codes(run(future, pub, digest)[0]) == {ReasonCode.ATTESTATION_EXPIRED}
    # Inside the skew leeway: accepted.
    just = make(
        key, digest, not_before=NOW - timedelta(days=1), not_after=NOW - timedelta(minutes=1)
    )
    assert not codes(run(just, pub, digest)[0])
    soon = make(
        key, digest, not_before=NOW + timedelta(minutes=1), not_after=NOW + timedelta(days=1)
    )
    assert not codes(run(soon, pub, digest)[0])
    # Unbounded window: never expires.
    assert not codes(run(make(key, digest, not_before=None, not_after=None), pub, digest)[0])


def test_every_failing_code_reported(keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    env = make(
        key,
        "sha256:" + "a" * 64,
        not_after=NOW - timedelta(days=1),
        not_before=NOW - timedelta(days=2),
    )
    results, _ = run(env, pub, "sha256:" + "b" * 64, expect=Expectations(git_sha="e" * 40))
    assert codes(results) == {
        ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
        ReasonCode.ATTESTATION_MISMATCH,
        ReasonCode.ATTESTATION_EXPIRED,
    }


def test_wrong_key_and_tampered_payload(
    keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    digest = "sha256:" + "a" * 64
    env = make(key, digest)
    results, facts = run(env, other_keypair[1], digest)
    assert codes(results) == {ReasonCode.ATTESTATION_INVALID} and facts is None
    doc = json.loads(env)
    st = json.loads(base64.b64decode(doc["payload"]))
    st["subject"][0]["digest"]["sha256"] = "b" * 64
    doc["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    assert codes(run(json.dumps(doc).encode(), pub, "sha256:" + "b" * 64)[0]) == {
        ReasonCode.ATTESTATION_INVALID
    }


def test_statement_shown_beside_payload_is_ignored(keypair: tuple[Path, Path]) -> None:
    """A decoded 'statement' shown next to the DSSE payload: only the signed bytes count."""
    key, pub = keypair
    env = json.loads(make(key, "sha256:" + "a" * 64))
    st = json.loads(base64.b64decode(env["payload"]))
    st["subject"][0]["digest"]["sha256"] = "b" * 64
    env["statement"] = st  # what a careless verifier might read
    results, facts = run(json.dumps(env).encode(), pub, "sha256:" + "b" * 64)
    assert codes(results) == {ReasonCode.ATTESTATION_SUBJECT_MISMATCH}
    assert facts.subjects == (("resnet", "sha256:" + "a" * 64),)


def test_wrong_payload_type(keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    k = load_key(key)
    payload = base64.b64decode(json.loads(make(key, "sha256:" + "a" * 64))["payload"])
    for ptype in ("application/json", "text/plain", ""):
        env = envelope_json(k, payload, ptype)  # correctly signed over the other type
        results, _ = run(json.dumps(env).encode(), pub, "sha256:" + "a" * 64)
        assert codes(results) == {ReasonCode.ATTESTATION_INVALID}, ptype


def test_signed_but_malformed_statements(keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    k = load_key(key)
    good = base64.b64decode(json.loads(make(key, "sha256:" + "a" * 64))["payload"])
    bad_payloads = {
        "duplicate-key": good.replace(
            b'"_type"', b'"_type": "https://in-toto.io/Statement/v1", "_type"', 1
        ),
        "not-json": b"\x00\x01garbage",
        "non-utf8": b'{"_type": "\xff"}',
        "wrong-type": good.replace(b"Statement/v1", b"Statement/v9"),
        "no-subject-list": b'{"_type": "https://in-toto.io/Statement/v1", "subject": {}, '
        b'"predicateType": "x"}',
        "bad-digest": good.replace(b'"sha256": "' + b"a" * 64, b'"sha256": "' + b"z" * 64),
        "bad-time": good.replace(b'"notAfter": "', b'"notAfter": "yesterday', 1),
        "nested": b'{"_type": "https://in-toto.io/Statement/v1", "subject": [], '
        b'"predicateType": "x", "predicate": ' + b'{"a":' * 200 + b"1" + b"}" * 201,
    }
    for name, payload in bad_payloads.items():
        env = json.dumps(envelope_json(k, payload)).encode()
        results, facts = run(env, pub, "sha256:" + "a" * 64)
        assert codes(results) == {ReasonCode.ATTESTATION_INVALID}, name
        assert facts is None


def test_hostile_envelopes(keypair: tuple[Path, Path]) -> None:
    pub = keypair[1]
    for env in (
        b"garbage",
        b"{",
        b"[]",
        b'{"payloadType": 1}',
        b"\xff\xfe",
        b"[" * 50_000,
        b'{"a":1,"a":2}',
        b'{"payload": "", "payloadType": "application/vnd.in-toto+json", "signatures": []}',
    ):
        results, facts = run(env, pub, "sha256:" + "a" * 64)
        assert codes(results) == {ReasonCode.ATTESTATION_INVALID} and facts is None


def test_slsa_v02_from_jq_example(keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    st = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [{"name": "model.onnx", "digest": {"sha256": "a" * 64}}],
        "predicate": {
            "builder": {"id": "https://ci.example/builder"},
            "invocation": {
                "configSource": {
                    "uri": "git+https://git.example/ml/model",
                    "digest": {"gitSha": GIT},
                }
            },
            "materials": [
                {"uri": "oci://registry.local/serving", "digest": {"sha256": "c" * 64}},
                {"uri": "dataset://imagenet", "digest": {"sha256": "d" * 64}},
            ],
        },
    }
    env = json.dumps(envelope_json(load_key(key), json.dumps(st).encode())).encode()
    expect = Expectations(
        git_sha=GIT, container_digest=CONTAINER, dataset_snapshot="sha256:" + "d" * 64
    )
    results, facts = run(env, pub, "sha256:" + "a" * 64, expect=expect)
    assert not codes(results), results
    assert facts.git_sha == GIT and facts.container_digest == CONTAINER
    bad = Expectations(
        git_sha=GIT, container_digest=CONTAINER, dataset_snapshot="sha256:" + "e" * 64
    )
    assert codes(run(env, pub, "sha256:" + "a" * 64, expect=bad)[0]) == {
        ReasonCode.ATTESTATION_MISMATCH
    }


def test_attestation_in_sigstore_bundle_with_key(keypair: tuple[Path, Path]) -> None:
    """The envelope may come wrapped in a Sigstore bundle (publicKey material)."""
    key, pub = keypair
    env = json.loads(make(key, "sha256:" + "a" * 64))
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "x"}, "tlogEntries": []},
        "dsseEnvelope": env,
    }
    results, _ = run(json.dumps(bundle).encode(), pub, "sha256:" + "a" * 64)
    assert not codes(results)


def test_attest_usage_errors(keypair: tuple[Path, Path]) -> None:
    from trustload.errors import UsageError

    key, _ = keypair
    with pytest.raises(UsageError):
        make(key, "md5:abc")
    with pytest.raises(UsageError):
        make(key, "sha256:" + "a" * 64, git_sha="")
    with pytest.raises(UsageError):
        make(key, "sha256:" + "a" * 64, not_before=NOW, not_after=NOW - timedelta(days=1))
