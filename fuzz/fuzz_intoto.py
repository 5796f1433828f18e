"""atheris harness: the in-toto statement parser (``trustload.formats.intoto``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import run

from trustload.decision import ReasonCode
from trustload.errors import TrustloadError
from trustload.formats.intoto import parse_statement, subject_matches


def test_one_input(data: bytes) -> None:
    try:
        statement = parse_statement(data, code=ReasonCode.ATTESTATION_INVALID)
    except TrustloadError as exc:
        assert exc.code is ReasonCode.ATTESTATION_INVALID
        return
    subject_matches(statement, "sha256:" + "a" * 64)


if __name__ == "__main__":
    run(test_one_input)
