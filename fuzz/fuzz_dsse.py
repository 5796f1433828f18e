"""atheris harness: the DSSE envelope parser (``trustload.formats.dsse.parse_envelope``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import run

from trustload.decision import ReasonCode
from trustload.errors import TrustloadError
from trustload.formats.dsse import parse_envelope


def test_one_input(data: bytes) -> None:
    try:
        env = parse_envelope(data, code=ReasonCode.ATTESTATION_INVALID)
    except TrustloadError as exc:
        assert exc.code is ReasonCode.ATTESTATION_INVALID
        return
    assert isinstance(env.payload, bytes) and env.signatures


if __name__ == "__main__":
    run(test_one_input)
