"""Hardening from the security review (issue 8, item 8): trust configuration that fails
closed, attestation validity windows, sender-constrained tokens, a JWKS pinned to a CA."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.attacks.helpers import Arena, Gate, with_gate
from tests.crypto.helpers import NOW, cert_bundle, make_ca, make_leaf, pem
from trustload.checks.signature import check_model_signature
from trustload.config import load_client_config
from trustload.decision import ReasonCode
from trustload.digests import ModelLayout, measure
from trustload.errors import UsageError
from trustload.facts import TrustAnchors
from trustload.formats.oms import Resource, build_statement
from trustload.gate import run_gate, trust_anchors


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustload.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


# ------------------------------------------------- ca_certs needs a pinned identity


def test_hardening_ca_without_identity_is_config_error(arena: Arena, gate: Gate) -> None:
    """``[gate] ca_certs`` without ``certificate_identity`` would trust every leaf the CA
    ever issued: the gate refuses the configuration (exit 2) instead of starting."""
    work = arena.workdir()
    _key, ca = make_ca(work, "release-ca")
    (work / "ca.pem").write_bytes(pem(ca))
    text = arena.env.gate_config.read_text()
    text = text.replace("[gate]\n", f'[gate]\nca_certs = ["{work / "ca.pem"}"]\n', 1)
    bad = arena.env.gate_config.with_name("gate-ca-no-pin.toml")
    bad.write_text(text)
    proc = cli("verify", "anything@production", "--config", str(bad), "--json")
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "certificate_identity" in proc.stderr and proc.stdout == ""
    with pytest.raises(UsageError, match="certificate_identity"):
        load_client_config(bad)
    # A configuration built around the loader (an embedding program) is refused too.
    unpinned = with_gate(gate.cfg, ca_certs=[work / "ca.pem"], certificate_identity=None)
    with pytest.raises(UsageError, match="certificate_identity"):
        trust_anchors(unpinned)
    with pytest.raises(UsageError, match="certificate_identity"):
        run_gate(unpinned, f"{arena.good()}@production")


def test_hardening_ca_without_identity_verifies_nothing(tmp_path: Path) -> None:
    """Below the configuration, the certificate verifier fails closed as well: a leaf of
    the trusted CA with no pinned identity is SIGNATURE_INVALID, whatever it names."""
    ca_key, ca = make_ca(tmp_path)
    leaf_key, leaf = make_leaf(ca_key, ca, email="anyone@example.com")
    model = tmp_path / "model.onnx"
    model.write_bytes(b"\x08\x01" * 512)
    hexdigest = measure(model).digest.removeprefix("sha256:")
    statement = build_statement(model.name, "files", [Resource(model.name, None, None, hexdigest)])
    bundle = cert_bundle(leaf_key, [leaf], statement)
    layout = ModelLayout.from_path(model)
    pinned = TrustAnchors(ca_certs=(pem(ca),), certificate_identity="anyone@example.com")
    assert check_model_signature(layout, bundle, pinned, now=NOW).result.ok
    outcome = check_model_signature(layout, bundle, TrustAnchors(ca_certs=(pem(ca),)), now=NOW)
    assert outcome.result.code is ReasonCode.SIGNATURE_INVALID
    assert "certificate_identity" in outcome.result.detail
