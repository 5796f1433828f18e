"""``trustload verify-files`` and ``trustload policy digest`` through a real subprocess:
exit status 0 / 1 / 2, and exactly one JSON document on stdout with ``--json``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.conftest import CONTAINER, DATASET, GIT, Signed
from tests.support.cli import run_cli as run
from trustload.policy import default_policy_dir, policy_digest
from trustload.policy.bundle import MAX_FILE_BYTES

PROVENANCE = ("--git-sha", GIT, "--container-digest", CONTAINER, "--dataset-snapshot", DATASET)


def one_json(stdout: str) -> dict:
    doc, end = json.JSONDecoder().raw_decode(stdout)
    assert stdout[end:].strip() == "", "more than one document on stdout"
    return doc


def test_permit_json(signed: Signed):
    out = run(
        "verify-files", signed.model, "--signature", signed.signature, "--key", signed.pub,
        "--attestation", signed.attestation, *PROVENANCE, "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = one_json(out.stdout)
    assert doc["decision"] == "permit" and doc["event"] == "startup_permit"
    assert doc["reasons"] == []
    assert doc["artifact_digest"] == signed.digest
    assert doc["policy_digest"] == policy_digest(default_policy_dir())
    assert {c["name"] for c in doc["checks"]} >= {"signature", "attestation", "policy"}


def test_human_output_goes_to_stderr(signed: Signed):
    out = run("verify-files", signed.model, "--signature", signed.signature, "--key", signed.pub)
    assert out.returncode == 0
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert any(line.startswith("ok   signature") for line in lines)
    assert lines[-1].startswith("PERMIT")


def test_directory_and_repeatable_key(signed: Signed):
    out = run(
        "verify-files",
        signed.directory,
        "--signature",
        signed.dir_signature,
        "--key",
        signed.other_pub,
        "--key",
        signed.pub,
        "--json",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert one_json(out.stdout)["decision"] == "permit"


def test_tampered_byte_denies(signed: Signed, tmp_path):
    copy = tmp_path / "model.onnx"
    shutil.copyfile(signed.model, copy)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    out = run("verify-files", copy, "--signature", signed.signature, "--key", signed.pub, "--json")
    assert out.returncode == 1
    doc = one_json(out.stdout)
    assert doc["decision"] == "deny" and doc["event"] == "startup_deny"
    assert doc["reasons"] == ["SIGNATURE_INVALID"]


@pytest.mark.parametrize(
    ("evidence", "code"),
    [
        ("missing", "SIGNATURE_MISSING"),
        ("garbage", "SIGNATURE_INVALID"),
        ("empty", "SIGNATURE_MISSING"),
    ],
)
def test_bad_signature_evidence_is_a_denial_not_usage(signed: Signed, tmp_path, evidence, code):
    sig = tmp_path / "model.sig"
    if evidence == "garbage":
        sig.write_bytes(b'{"mediaType": 12, ' + b"[" * 5000)
    elif evidence == "empty":
        sig.write_bytes(b"")
    out = run("verify-files", signed.model, "--signature", sig, "--key", signed.pub, "--json")
    assert out.returncode == 1, out.stderr
    assert one_json(out.stdout)["reasons"] == [code]
    assert "Traceback" not in out.stderr


def test_missing_attestation_file_is_attestation_missing(signed: Signed, tmp_path):
    out = run(
        "verify-files", signed.model, "--signature", signed.signature, "--key", signed.pub,
        "--attestation", tmp_path / "nope.json", *PROVENANCE, "--json",
    )  # fmt: skip
    assert out.returncode == 1
    assert one_json(out.stdout)["reasons"] == ["ATTESTATION_MISSING"]


def test_custom_policy_denial(signed: Signed, tmp_path):
    root = tmp_path / "policy"
    root.mkdir()
    shutil.copyfile(default_policy_dir() / "download.rego", root / "download.rego")
    (root / "ci.rego").write_text(
        "package registry.download\n\nimport rego.v1\n\n"
        'deny contains "CI requires an attestation" if input.attestation.present == false\n'
    )
    out = run(
        "verify-files",
        signed.model,
        "--signature",
        signed.signature,
        "--key",
        signed.pub,
        "--policy",
        root,
        "--json",
    )
    assert out.returncode == 1
    doc = one_json(out.stdout)
    assert doc["reasons"] == ["POLICY_DENY"]
    assert doc["policy_digest"] == policy_digest(root)
    (policy_check,) = [c for c in doc["checks"] if c["name"] == "policy"]
    assert policy_check["detail"] == "CI requires an attestation"


def _usage_args(signed: Signed, tmp_path: Path, problem: str) -> list:
    base = ["verify-files", signed.model, "--signature", signed.signature]
    key = ["--key", signed.pub]
    if problem in ("malformed-rego", "oversized-rego"):
        root = tmp_path / "policy"
        root.mkdir()
        if problem == "malformed-rego":
            (root / "bad.rego").write_text("package registry.download\n\npermit if {\n")
        else:
            (root / "big.rego").write_bytes(b"# " * (MAX_FILE_BYTES // 2 + 1))
        return [*base, *key, "--policy", root, "--json"]
    return {
        "no-anchor": base,
        "half-identity": [*base, "--certificate-identity", "me@example.com"],
        "key-and-identity": [
            *base,
            *key,
            "--certificate-identity",
            "me@example.com",
            "--certificate-oidc-issuer",
            "https://issuer.example",
        ],
        "missing-key-file": [*base, "--key", tmp_path / "nope.pub"],
        "missing-model": [
            "verify-files",
            tmp_path / "nope.onnx",
            "--signature",
            signed.signature,
            *key,
        ],
        "attestation-without-expectations": [*base, *key, "--attestation", signed.attestation],
        "expectations-without-attestation": [*base, *key, "--git-sha", GIT],
        "missing-rekor-key-file": [*base, *key, "--rekor-key", tmp_path / "nope-rekor.pub"],
        "unknown-flag": [*base, *key, "--frobnicate"],
    }[problem]


USAGE_PROBLEMS = [
    "no-anchor",
    "half-identity",
    "key-and-identity",
    "missing-key-file",
    "missing-model",
    "attestation-without-expectations",
    "expectations-without-attestation",
    "missing-rekor-key-file",
    "malformed-rego",
    "oversized-rego",
    "unknown-flag",
]


@pytest.mark.parametrize("problem", USAGE_PROBLEMS)
def test_usage_errors_exit_2_fast_path(signed: Signed, tmp_path, problem, capsys):
    """In-process through the typer-free entry point (same validation as the command)."""
    from trustload.cli.verify_files import fast_main

    args = [str(a) for a in _usage_args(signed, tmp_path, problem)[1:]]
    assert fast_main(args) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.strip()


@pytest.mark.parametrize(
    "problem",
    [
        "no-anchor",
        "missing-model",
        "malformed-rego",
        "unknown-flag",
    ],
)
def test_usage_errors_exit_2(signed: Signed, tmp_path, problem):
    out = run(*_usage_args(signed, tmp_path, problem))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    assert out.stderr.strip()


def test_policy_digest_command(tmp_path):
    out = run("policy", "digest", default_policy_dir())
    assert out.returncode == 0
    assert out.stdout.strip() == policy_digest(default_policy_dir())
    moved = tmp_path / "copy"
    shutil.copytree(default_policy_dir(), moved)
    assert run("policy", "digest", moved).stdout == out.stdout
    checked = run("policy", "digest", "--check", moved)
    assert checked.returncode == 0 and checked.stdout == out.stdout
    (moved / "broken.rego").write_text("package registry.download\n\npermit if {\n")
    assert run("policy", "digest", "--check", moved).returncode == 2
    missing = run("policy", "digest", tmp_path / "missing")
    assert missing.returncode == 2 and missing.stdout == ""


FAST = [sys.executable, "-m", "trustload.cli.verify_files"]


def test_fast_path_matches_the_typer_command(signed: Signed, tmp_path):
    """``python -m trustload.cli.verify_files`` (no typer, lean start-up): same contract."""
    args = [str(signed.model), "--signature", str(signed.signature), "--key", str(signed.pub)]
    ok = subprocess.run([*FAST, *args, "--json"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert one_json(ok.stdout)["decision"] == "permit"
    human = subprocess.run([*FAST, *args], capture_output=True, text=True, timeout=120)
    assert human.returncode == 0 and human.stdout == ""
    assert human.stderr.strip().splitlines()[-1].startswith("PERMIT")
    bad = subprocess.run(
        [*FAST, *args, "--frobnicate"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and bad.stdout == ""
    nokey = subprocess.run(
        [*FAST, str(signed.model), "--signature", str(signed.signature)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert nokey.returncode == 2 and "--key" in nokey.stderr
    sig = tmp_path / "garbage.sig"
    sig.write_bytes(b"{{{{")
    deny = subprocess.run(
        [*FAST, str(signed.model), "--signature", str(sig), "--key", str(signed.pub), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert deny.returncode == 1
    assert one_json(deny.stdout)["reasons"] == ["SIGNATURE_INVALID"]
    modules = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, runpy; sys.argv = ['x', '--help']\n"
            "try:\n    runpy.run_module('trustload.cli.verify_files', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('typer' in sys.modules, 'pydantic' in sys.modules, file=sys.stderr)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert modules.stderr.strip().endswith("False False")
