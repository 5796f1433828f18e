"""TUF's attack classes against the model channel: rollback, indefinite freeze,
mix-and-match, arbitrary artifact, endless data, slow retrieval. A hostile
man-in-the-middle holding a trusted server certificate (``hostile.Mitm``) or write
access to the Registry's blob store plays the attacker; the real gate decides."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.attacks.helpers import Arena, Gate, assert_denied, cache_entries, card, hours_ago
from tests.attacks.hostile import Mitm
from trustload.decision import ReasonCode


@pytest.fixture
def mitm(arena: Arena) -> Iterator[Mitm]:
    with Mitm(arena.reg) as m:
        yield m


def resolve_path(name: str, ref: str = "production") -> str:
    return f"/v1/models/{name}/resolve/{ref}"


def test_tuf_rollback_replayed_alias_answer(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """An old `production -> v1` answer replayed after the gate trusted v2.

    Attack: TUF rollback
    """
    name = arena.name()
    arena.publish(name, "1", arena.model_file())
    old = mitm.fetch(resolve_path(name), arena.env.token()).content
    arena.publish(name, "2", arena.model_file())
    cfg = gate.via(mitm.url)
    assert gate.run(f"{name}@production", cfg).decision.permitted
    mitm.replay[resolve_path(name)] = old
    assert_denied(
        gate.run(f"{name}@production", cfg), ReasonCode.DOWNGRADE_BLOCKED, cache_dir=gate.cache_dir
    )


def test_tuf_rollback_older_version_requested(arena: Arena, gate: Gate) -> None:
    """An older, still Approved version asked for by number once v2 is trusted.

    Attack: TUF rollback
    """
    name = arena.name()
    arena.publish(name, "1", arena.model_file())
    arena.publish(name, "2", arena.model_file())
    assert gate.run(f"{name}@production").decision.permitted
    assert_denied(gate.run(f"{name}@1"), ReasonCode.DOWNGRADE_BLOCKED, cache_dir=gate.cache_dir)


def _freeze(arena: Arena, gate: Gate, mitm: Mitm, served_at: Any) -> None:
    name = arena.good()
    cfg = gate.via(mitm.url)
    assert gate.run(f"{name}@production", cfg).decision.permitted
    doc = json.loads(mitm.fetch(resolve_path(name), arena.env.token()).content)
    arena.admin().revoke(name, "1", "compromised")  # the fresh truth the attacker hides
    if served_at is None:
        doc.pop("served_at")
    else:
        doc["served_at"] = served_at
    mitm.replay[resolve_path(name)] = json.dumps(doc).encode()
    mitm.replay[f"/v1/models/{name}/versions/1"] = json.dumps(doc).encode()
    assert_denied(
        gate.run(f"{name}@production", cfg),
        ReasonCode.REGISTRY_UNAVAILABLE,
        cache_dir=gate.cache_dir,
    )


def test_tuf_freeze_stale_answer_replayed(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """An hour-old answer (from before a revocation) replayed to hide the revocation.

    Attack: TUF indefinite freeze
    """
    _freeze(arena, gate, mitm, hours_ago(1))


def test_tuf_freeze_answer_dated_in_the_future(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """A replayed answer post-dated an hour ahead so that it stays 'fresh' for longer.

    Attack: TUF indefinite freeze
    """
    _freeze(arena, gate, mitm, hours_ago(-1))


def test_tuf_freeze_answer_without_timestamp(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """A replayed answer whose `served_at` was stripped so its age cannot be judged.

    Attack: TUF indefinite freeze
    """
    _freeze(arena, gate, mitm, None)


def test_tuf_mix_signature_of_other_version(arena: Arena, gate: Gate) -> None:
    """Version 2's artifact published with version 1's (valid) signature bundle.

    Attack: TUF mix-and-match
    """
    name = arena.name()
    v1 = arena.model_file()
    arena.publish(name, "1", v1, alias=None)
    v2 = arena.model_file()
    arena.publish(name, "2", v2, signature=arena.sign(v1).signature)
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir
    )


def test_tuf_mix_attestation_of_other_version(arena: Arena, gate: Gate) -> None:
    """Version 2 published with version 1's (validly signed) provenance attestation.

    Attack: TUF mix-and-match
    """
    name = arena.name()
    v1 = arena.model_file()
    v2 = arena.model_file()
    arena.publish(name, "2", v2, attestation=arena.sign(v1).attestation)
    assert_denied(
        gate.run(f"{name}@production"),
        ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_tuf_mix_card_of_other_model(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """The record of model A served with the model card of tenant B's model.

    Attack: TUF mix-and-match
    """
    name = arena.name()
    arena.publish(name, "1", arena.model_file())
    other = card(tenant="B")

    def swap(doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "card": other}

    mitm.on_record = swap
    assert_denied(
        gate.run(f"{name}@production", gate.via(mitm.url)),
        ReasonCode.TENANT_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_tuf_mix_record_points_at_other_models_artifact(
    arena: Arena, gate: Gate, mitm: Mitm
) -> None:
    """Model A's record rewritten to pin model B's (honestly signed) artifact.

    Attack: TUF mix-and-match
    """
    a = arena.name("a")
    b = arena.name("b")
    arena.publish(a, "1", arena.model_file())
    rec_b = arena.publish(b, "1", arena.model_file())

    def swap(doc: dict[str, Any]) -> dict[str, Any]:
        return {
            **doc,
            "artifact_digest": rec_b.artifact_digest,
            "artifact_size": rec_b.artifact_size,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in rec_b.files],
        }

    mitm.on_record = swap
    assert_denied(
        gate.run(f"{a}@production", gate.via(mitm.url)),
        ReasonCode.SIGNATURE_INVALID,
        ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def _answer_with(arena: Arena, mitm: Mitm, path: str) -> None:
    """Every record request is answered with the real, fresh record at ``path``."""
    token = arena.env.token()
    mitm.on_record = lambda _doc: dict(mitm.fetch(path, token).json())


def test_tuf_mix_record_of_other_model(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """The resolve of model A answered with model B's real, fresh, honestly signed record.

    Attack: TUF mix-and-match
    """
    a, b = arena.name("a"), arena.name("b")
    arena.publish(a, "1", arena.model_file())
    arena.publish(b, "1", arena.model_file())
    _answer_with(arena, mitm, resolve_path(b))
    result = gate.run(f"{a}@production", gate.via(mitm.url))
    assert_denied(result, ReasonCode.REGISTRY_UNAVAILABLE, cache_dir=gate.cache_dir)
    assert cache_entries(gate.cache_dir) == []  # nothing of b's was even downloaded


def test_tuf_mix_record_of_other_version(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """A pinned `name@1` (revoked) answered with the real record of `name@2`.

    Attack: TUF mix-and-match
    """
    name = arena.name()
    arena.publish(name, "1", arena.model_file())
    arena.publish(name, "2", arena.model_file(), alias=None)
    arena.admin().revoke(name, "1", "pinned for audit, then revoked")
    _answer_with(arena, mitm, f"/v1/models/{name}/versions/2")
    result = gate.run(f"{name}@1", gate.via(mitm.url))
    assert_denied(result, ReasonCode.REGISTRY_UNAVAILABLE, cache_dir=gate.cache_dir)
    assert cache_entries(gate.cache_dir) == []


def test_tuf_mix_provenance_rewritten_in_record(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """The record's git_sha rewritten so it no longer matches the signed provenance.

    Attack: TUF mix-and-match
    """
    name = arena.good()
    mitm.on_record = lambda doc: {**doc, "git_sha": "f" * 40}
    assert_denied(
        gate.run(f"{name}@production", gate.via(mitm.url)),
        ReasonCode.ATTESTATION_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_tuf_arbitrary_artifact_on_the_wire(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """Attacker-chosen bytes (same size) served for the pinned artifact digest.

    Attack: TUF arbitrary artifact
    """
    name = arena.name()
    rec = arena.publish(name, "1", arena.model_file())
    target = rec.artifact_digest.removeprefix("sha256:")
    mitm.on_blob = lambda hexd, body: os.urandom(len(body)) if hexd == target else body
    assert_denied(
        gate.run(f"{name}@production", gate.via(mitm.url)),
        ReasonCode.DIGEST_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_tuf_arbitrary_artifact_in_registry_store(arena: Arena, gate: Gate) -> None:
    """The Registry's own blob store altered (one byte) behind its back.

    Attack: TUF arbitrary artifact
    """
    name = arena.name()
    rec = arena.publish(name, "1", arena.model_file())
    blob = arena.reg.blob_path(rec.artifact_digest)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0x01
    blob.write_bytes(bytes(data))
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.DIGEST_MISMATCH, cache_dir=gate.cache_dir
    )


def test_tuf_endless_data_chunked(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """An artifact answered with endless chunked data and no Content-Length.

    Attack: TUF endless data
    """
    name = arena.name()
    rec = arena.publish(name, "1", arena.model_file())
    mitm.endless.add(rec.artifact_digest.removeprefix("sha256:"))
    assert_denied(
        gate.run(f"{name}@production", gate.via(mitm.url)),
        ReasonCode.DIGEST_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_tuf_endless_data_beyond_recorded_size(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """The right bytes followed by one more mebibyte than the record's size.

    Attack: TUF endless data
    """
    name = arena.name()
    rec = arena.publish(name, "1", arena.model_file())
    target = rec.artifact_digest.removeprefix("sha256:")
    mitm.on_blob = lambda hexd, body: body + os.urandom(1 << 20) if hexd == target else body
    assert_denied(
        gate.run(f"{name}@production", gate.via(mitm.url)),
        ReasonCode.DIGEST_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_tuf_endless_data_as_evidence(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """The signature bundle (no recorded size) answered with endless data.

    Attack: TUF endless data
    """
    name = arena.name()
    rec = arena.publish(name, "1", arena.model_file())
    assert rec.signature_digest is not None
    mitm.endless.add(rec.signature_digest.removeprefix("sha256:"))
    assert_denied(
        gate.run(f"{name}@production", gate.via(mitm.url)),
        ReasonCode.DIGEST_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_tuf_slow_retrieval_drip_feed(arena: Arena, gate: Gate, mitm: Mitm) -> None:
    """A server drip-feeding one byte every 50 ms, never tripping a per-read timeout.

    Attack: TUF slow retrieval
    """
    name = arena.name()
    rec = arena.publish(name, "1", arena.model_file())
    mitm.drip[rec.artifact_digest.removeprefix("sha256:")] = rec.artifact_size
    cfg = gate.via(mitm.url, retries=0, read_timeout=5.0, min_download_rate=65536, slow_grace=1.0)
    started = time.monotonic()
    result = gate.run(f"{name}@production", cfg)
    assert time.monotonic() - started < 10.0
    assert_denied(result, ReasonCode.REGISTRY_UNAVAILABLE, cache_dir=gate.cache_dir)
