"""atheris harness: a whole model-signature bundle through the gate's signature check
(``trustload.checks.signature.check_model_signature``) against a fixed model and a fresh
trusted key. Garbage must never verify."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import run

from trustload.checks.signature import check_model_signature
from trustload.crypto.keys import generate_keypair
from trustload.decision import ReasonCode, utc_now
from trustload.digests import ModelLayout
from trustload.facts import TrustAnchors

_DIR = Path(tempfile.mkdtemp(prefix="fuzz-bundle-"))
(_DIR / "model.bin").write_bytes(b"model bytes")
_KEY, _PUB = generate_keypair(_DIR / "k")
LAYOUT = ModelLayout.from_path(_DIR / "model.bin")
ANCHORS = TrustAnchors(public_keys=(_PUB.read_bytes(),))


def test_one_input(data: bytes) -> None:
    out = check_model_signature(LAYOUT, data, ANCHORS, now=utc_now())
    assert not out.result.ok, "garbage verified"
    assert out.result.code in (ReasonCode.SIGNATURE_INVALID, ReasonCode.SIGNATURE_MISSING)


if __name__ == "__main__":
    run(test_one_input)
