"""Pure pieces of the gate flow: manifest parsing, early denial, state advance."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from tests.client.test_records import good
from trustload.client.api import parse_record
from trustload.decision import CheckResult, ReasonCode
from trustload.digests import FileEntry, manifest_bytes
from trustload.errors import TrustloadError
from trustload.facts import TrustedState
from trustload.gate import blocked_at_once, next_state, parse_manifest

A = FileEntry("a.bin", hashlib.sha256(b"a").hexdigest(), 1)
B = FileEntry("dir/b.bin", hashlib.sha256(b"bb").hexdigest(), 2)


def test_canonical_manifest_round_trips() -> None:
    assert parse_manifest(manifest_bytes([B, A])) == (A, B)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        json.dumps({"files": []}).encode(),
        manifest_bytes([A]).replace(b"}", b', "extra": 1}', 1),
        manifest_bytes([A, B]).replace(b'":', b'": ', 1),  # same content, not canonical
        json.dumps(
            {"mediaType": "x", "files": [{"path": "../x", "sha256": A.sha256, "size": 1}]}
        ).encode(),
    ],
)
def test_bad_manifests_are_digest_mismatch(raw: bytes) -> None:
    with pytest.raises(TrustloadError) as err:
        parse_manifest(raw)
    assert err.value.code is ReasonCode.DIGEST_MISMATCH


def test_blocked_at_once_only_for_revocation_quarantine_stage() -> None:
    ok = CheckResult.passed("x")
    for code in (ReasonCode.REVOKED, ReasonCode.QUARANTINED, ReasonCode.STAGE_NOT_ALLOWED):
        assert blocked_at_once([ok, CheckResult.failed("y", code)])
    assert not blocked_at_once([ok, CheckResult.failed("t", ReasonCode.TENANT_MISMATCH)])


def state(version: str, alias: str | None, rev: int | None, digest: str) -> TrustedState:
    return TrustedState("risk", "prod", version, alias, rev, digest)


def test_next_state_moves_forward_and_keeps_alias_memory() -> None:
    rec = parse_record(good())  # version 3 via alias production revision 4
    assert next_state(rec, "prod", None) == state("3", "production", 4, rec.artifact_digest)
    same = state("3", "production", 4, rec.artifact_digest)
    assert next_state(rec, "prod", same) is None
    by_version = replace(rec, alias=None, alias_revision=None)
    assert next_state(by_version, "prod", same) is None  # pinning by version keeps the alias memory
    older_state = state("2", "production", 3, "sha256:" + "0" * 64)
    assert next_state(rec, "prod", older_state) == state("3", "production", 4, rec.artifact_digest)
    moved = replace(rec, alias_revision=5)
    assert next_state(moved, "prod", same) == state("3", "production", 5, rec.artifact_digest)
