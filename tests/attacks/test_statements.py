"""Statement confusion: a genuine signed in-toto statement offered as the model signature.

A signed statement that is not a model-signing manifest (SLSA provenance, ``cosign
attest-blob``) vouches for its subjects' digests. The gate accepts it as a signature of
one file whose SHA-256 is a subject, and of nothing else: never of a directory (no single
digest stands for its file set), never of bytes it does not name.
"""

from __future__ import annotations

from tests.attacks.helpers import Arena, Gate, assert_denied
from trustload.decision import ReasonCode


def test_statements_provenance_replayed_as_directory_signature(arena: Arena, gate: Gate) -> None:
    """A directory model whose signature is its own genuine provenance attestation.

    Attack: identity / statement confusion
    """
    name = arena.name()
    path = arena.model_dir()
    signed = arena.sign(path)
    arena.publish(name, "1", path, signed=signed, signature=signed.attestation)
    result = assert_denied(
        gate.run(f"{name}@production"), ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir
    )
    sig = next(c for c in result.decision.checks if c.name == "signature")
    assert "directory model needs a model-signing (OMS) signature" in sig.detail


def test_statements_provenance_for_other_bytes_as_signature(arena: Arena, gate: Gate) -> None:
    """A file model whose signature is a genuine statement about another file.

    Attack: identity / statement confusion
    """
    name = arena.name()
    path = arena.model_file()
    other = arena.sign(arena.model_file())
    arena.publish(name, "1", path, signature=other.attestation)
    result = assert_denied(
        gate.run(f"{name}@production"), ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir
    )
    sig = next(c for c in result.decision.checks if c.name == "signature")
    assert "has no subject with" in sig.detail


def test_statements_provenance_for_this_file_is_its_signature(arena: Arena, gate: Gate) -> None:
    """The control: the trusted signer's statement naming exactly this file's digest."""
    name = arena.name()
    path = arena.model_file()
    signed = arena.sign(path)
    arena.publish(name, "1", path, signed=signed, signature=signed.attestation)
    result = gate.run(f"{name}@production")
    assert result.decision.permitted, result.decision.to_json()["reasons"]
    sig = next(c for c in result.decision.checks if c.name == "signature")
    assert "in-toto statement, predicateType 'https://slsa.dev/provenance/v1'" in sig.detail
