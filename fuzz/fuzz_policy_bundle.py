"""atheris harness: the runtime policy bundle loader (``trustload.policy.bundle``): the
input is split into a ``data.json`` and a ``.rego`` file written to a temp directory."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from _common import run

from trustload.errors import UsageError
from trustload.policy.bundle import load_bundle, parse_data_json


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(UsageError):
        parse_data_json(data)
    cut = data.find(b"\x00")
    rego, doc = (data, b"") if cut < 0 else (data[:cut], data[cut + 1 :])
    root = Path(tempfile.mkdtemp(prefix="fuzz-policy-"))
    try:
        (root / "policy.rego").write_bytes(rego)
        if doc:
            (root / "data.json").write_bytes(doc)
        try:
            bundle = load_bundle(root)
        except UsageError:
            return
        assert bundle.digest.startswith("sha256:")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    run(test_one_input)
