"""atheris harness: SLSA provenance fact extraction (``trustload.formats.slsa``) on
statements whose predicate comes from the fuzzer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import run

from trustload.decision import ReasonCode
from trustload.errors import TrustloadError
from trustload.formats.jsonstrict import loads_strict
from trustload.formats.slsa import extract_facts

TYPES = ("https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2", "x")


def test_one_input(data: bytes) -> None:
    code = ReasonCode.ATTESTATION_INVALID
    kind = TYPES[data[0] % len(TYPES)] if data else TYPES[0]
    try:
        predicate = loads_strict(data[1:], code=code, what="predicate")
    except TrustloadError:
        return
    if not isinstance(predicate, dict):
        return
    try:
        facts = extract_facts(kind, predicate, code=code)
    except TrustloadError as exc:
        assert exc.code is code
        return
    json.dumps(repr(facts))


if __name__ == "__main__":
    run(test_one_input)
