"""Fuzz the parsers that read what the Registry says (records, directory manifests) and
the runtime policy bundle: a typed error or a value, never a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import FUZZ, digests, json_values
from trustload.client.api import RecordError, parse_record
from trustload.decision import ReasonCode
from trustload.errors import TrustloadError, UsageError
from trustload.gate import parse_manifest
from trustload.policy.bundle import load_bundle, parse_data_json

GOOD = {
    "name": "m",
    "version": "1",
    "stage": "Approved",
    "artifact_digest": "sha256:" + "a" * 64,
    "artifact_size": 3,
    "kind": "file",
    "format": "onnx",
    "policy_digest": "sha256:" + "b" * 64,
    "git_sha": "1" * 40,
    "container_digest": "sha256:" + "c" * 64,
    "dataset_snapshot": "ds",
    "revoked": False,
    "quarantined": False,
    "card": {"tenant_id": "A", "purpose": {"allowed": ["x"]}},
    "files": [{"path": "model.onnx", "sha256": "a" * 64, "size": 3}],
    "served_at": "2026-01-01T00:00:00Z",
}

record_like = st.fixed_dictionaries(
    {},
    optional={
        **{k: json_values for k in GOOD},
        "artifact_digest": digests,
        "stage": st.sampled_from(["Approved", "Staging", "Archived", "approved", ""]),
        "kind": st.sampled_from(["file", "directory", "dir", ""]),
        "files": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "path": st.sampled_from(["a", "../a", "/etc/x", "a/../../b", "", "a\x00b"])
                    | st.text(max_size=20),
                    "sha256": st.text("0123456789abcdefA", max_size=66),
                    "size": st.integers(-5, 2**64) | json_values,
                },
            ),
            max_size=4,
        ),
    },
)


@FUZZ
@given(st.one_of(record_like, json_values, st.builds(lambda d: {**GOOD, **d}, record_like)))
def test_record_parser(doc: Any) -> None:
    try:
        rec = parse_record(doc)
    except RecordError as exc:
        assert exc.code is ReasonCode.REGISTRY_UNAVAILABLE
        return
    # What parses is well-formed: a safe relative path per file, pinned digests.
    assert rec.artifact_digest.startswith("sha256:") and len(rec.artifact_digest) == 71
    for entry in rec.files:
        assert not entry.path.startswith("/") and ".." not in entry.path.split("/")


@FUZZ
@given(
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.builds(lambda files: json.dumps({"mediaType": "x", "files": files}).encode(), json_values)
)
def test_manifest_parser(raw: bytes) -> None:
    try:
        entries = parse_manifest(raw)
    except TrustloadError as exc:
        assert exc.code is ReasonCode.DIGEST_MISMATCH
        return
    for entry in entries:
        assert ".." not in entry.path.split("/")


@FUZZ
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_policy_data_json(raw: bytes) -> None:
    try:
        doc = parse_data_json(raw)
    except UsageError:
        return
    assert isinstance(doc, dict)


@FUZZ
@given(
    files=st.dictionaries(
        st.sampled_from(["a.rego", "b.rego", "data.json", "sub/c.rego", "x.txt", "sub/data.json"]),
        st.binary(max_size=200),
        max_size=4,
    )
)
def test_policy_bundle_loader(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes]
) -> None:
    root: Path = tmp_path_factory.mktemp("bundle")
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    try:
        bundle = load_bundle(root)
    except UsageError:
        return
    assert bundle.digest.startswith("sha256:")
