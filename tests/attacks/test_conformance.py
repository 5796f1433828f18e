"""``trustload conformance`` (R9 on a live deployment) against the dev-env Registry:
green on a correct deployment, red on a broken one, and never a silent skip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.attacks.helpers import Arena, with_registry
from trustload.config import load_client_config
from trustload.conformance import CANARY_PREFIX, run_conformance
from trustload.crypto.keys import generate_keypair

SCENARIOS = ["baseline", "chaos", "negative", "policy drift", "tenant cross"]


def conformance(arena: Arena, gate_toml: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "trustload.cli.main",
            "conformance",
            "--config",
            str(gate_toml),
            "--admin-config",
            str(arena.env.admin_config),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=arena.env.root,
    )


def test_conformance_passes_against_dev_env(arena: Arena) -> None:
    proc = conformance(arena, arena.env.gate_config, "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = json.loads(proc.stdout)  # exactly one JSON document
    assert doc["passed"] is True
    assert [r["scenario"] for r in doc["results"]] == SCENARIOS
    assert all(r["passed"] for r in doc["results"])
    assert doc["canary"].startswith(CANARY_PREFIX) and doc["cleanup"] == []
    by_name = {r["scenario"]: r for r in doc["results"]}
    assert "REVOKED" in by_name["chaos"]["observed"]
    assert "SIGNATURE_INVALID" in by_name["negative"]["observed"]
    assert by_name["policy drift"]["observed"] == "deny: POLICY_DIGEST_MISMATCH"
    # The canary can never be served afterwards: every version revoked and archived.
    versions = arena.admin().list_versions(doc["canary"])
    assert versions and all(v.revoked and v.stage == "Archived" for v in versions)


def test_conformance_fails_on_a_gate_trusting_the_wrong_key(arena: Arena) -> None:
    root = arena.env.root
    generate_keypair(root / "wrong")
    text = arena.env.gate_config.read_text()
    assert 'trusted_keys = ["signing.pub"]' in text
    broken = root / "gate-broken.toml"
    broken.write_text(
        text.replace('trusted_keys = ["signing.pub"]', 'trusted_keys = ["wrong.pub"]')
    )
    proc = conformance(arena, broken)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert "FAIL" in proc.stdout and "baseline" in proc.stdout
    assert "SIGNATURE_INVALID" in proc.stdout
    js = conformance(arena, broken, "--json")
    doc = json.loads(js.stdout)
    assert js.returncode == 1 and doc["passed"] is False
    assert not any(r["passed"] for r in doc["results"])  # a gate that denies all proves nothing


def test_conformance_tenant_cross_without_issuer_needs_a_token(arena: Arena) -> None:
    work = arena.workdir()
    token = work / "gate.token"
    token.write_text(arena.env.token())
    gate_cfg = with_registry(
        load_client_config(arena.env.gate_config), token_file=token, dev_token=None
    )
    admin_cfg = load_client_config(arena.env.admin_config)
    report = run_conformance(gate_cfg, admin_cfg, key=arena.env.signing_key)
    rows = {r.scenario: r for r in report.results}
    assert not report.passed and rows["tenant cross"].observed == "not run"
    assert all(r.passed for r in report.results if r.scenario != "tenant cross")
    other = work / "b.token"
    other.write_text(arena.env.token(tenant="B"))
    report = run_conformance(
        gate_cfg, admin_cfg, key=arena.env.signing_key, cross_tenant_token_file=other
    )
    assert report.passed, report.to_json()


def test_conformance_checks_the_serving_image_when_configured(arena: Arena) -> None:
    """With ``[gate.image]``, the canary is attested for that image, the baseline verifies
    its signature, and an ``image`` row proves a wrong image key is denied."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.support.cosign_layout import signed_layout
    from trustload.crypto.keys import public_pem

    root = arena.env.root
    key = ec.generate_private_key(ec.SECP256R1())
    layout, digest = signed_layout(root / "serving-image", key)
    (root / "image.pub").write_bytes(public_pem(key.public_key()))
    gate_toml = root / "gate-image.toml"
    gate_toml.write_text(
        arena.env.gate_config.read_text()
        + f'\n[gate.image]\nreference = "oci-layout:{layout}@{digest}"\nkeys = ["image.pub"]\n'
    )
    proc = conformance(arena, gate_toml, "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = json.loads(proc.stdout)
    assert [r["scenario"] for r in doc["results"]] == [*SCENARIOS, "image"]
    by_name = {r["scenario"]: r for r in doc["results"]}
    assert by_name["image"]["passed"]
    assert by_name["image"]["observed"] == "deny: IMAGE_SIGNATURE_INVALID"
