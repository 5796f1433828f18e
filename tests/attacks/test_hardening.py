"""Hardening from the security review (issue 8, item 8): trust configuration that fails
closed, attestation validity windows, sender-constrained tokens, a JWKS pinned to a CA."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.attacks.helpers import Arena, Gate, assert_denied, with_gate
from tests.crypto.helpers import NOW, cert_bundle, make_ca, make_leaf, pem
from tests.support.cli import run_cli as cli
from trustload.checks.signature import check_model_signature
from trustload.config import load_client_config
from trustload.decision import ReasonCode
from trustload.digests import ModelLayout, measure
from trustload.errors import TrustloadError, UsageError
from trustload.facts import TrustAnchors
from trustload.formats.oms import Resource, build_statement
from trustload.gate import run_gate, trust_anchors

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


# ------------------------------------------------- attestation validity windows


def _unbounded(arena: Arena) -> str:
    """A model whose attestation has no notAfter (signed by the release key)."""
    path = arena.model_file()
    name = arena.name()
    arena.publish(name, "1", path, signed=arena.sign(path, not_after=None))
    return name


def test_hardening_attestation_without_not_after_in_prod(arena: Arena, gate: Gate) -> None:
    """A validly signed attestation with no end of validity (it would vouch forever) is
    refused in prod, where ``require_attestation_window`` defaults to true.

    Attack: attestation / unbounded validity
    """
    name = _unbounded(arena)
    assert gate.cfg.gate.environment == "prod"
    result = gate.run(f"{name}@production")
    assert_denied(result, ReasonCode.ATTESTATION_INVALID, cache_dir=gate.cache_dir)
    check = next(c for c in result.decision.checks if c.name == "attestation_validity")
    assert check.code is ReasonCode.ATTESTATION_INVALID and "notAfter" in check.detail


def test_hardening_attestation_window_option(arena: Arena, gate: Gate) -> None:
    """Control: the option decides, and outside prod it is off unless set."""
    name = _unbounded(arena)
    off = with_gate(gate.cfg, require_attestation_window=False)
    assert gate.run(f"{name}@production", off).decision.permitted
    staging = with_gate(gate.cfg, environment="staging", state_dir=gate.root / "s2")
    assert gate.run(f"{name}@production", staging).decision.permitted
    forced = with_gate(staging, require_attestation_window=True, state_dir=gate.root / "s3")
    denied = gate.run(f"{name}@production", forced)
    assert denied.decision.reasons == [ReasonCode.ATTESTATION_INVALID]


def test_hardening_publish_writes_window_until_revalidation(arena: Arena, gate: Gate) -> None:
    """``trustload publish`` ends the attestation's window at the card's revalidate_by, so
    what it publishes passes in prod."""
    from tests.attacks.helpers import CONTAINER, DATASET, GIT_SHA, card
    from trustload.checks.attestation import verify_statement
    from trustload.cli.publish import publish_model

    name = arena.name()
    doc = card(revalidate_by="2031-05-01T12:00:00Z")
    rec = publish_model(
        arena.admin_cfg,
        arena.model_file(),
        name=name,
        version="1",
        key=arena.env.signing_key,
        git_sha=GIT_SHA,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
        card=doc,
    )
    assert rec.attestation_digest is not None
    with arena.reg.admin() as http:
        blob = http.get(f"/v1/blobs/sha256/{rec.attestation_digest.removeprefix('sha256:')}")
    assert blob.status_code == 200
    anchors = TrustAnchors(public_keys=(arena.env.signing_pub.read_bytes(),))
    _stmt, prov, _signer = verify_statement(blob.content, anchors, now=NOW)
    assert prov.not_after is not None and prov.not_after.isoformat() == "2031-05-01T12:00:00+00:00"
    admin = arena.admin()
    admin.set_stage(name, "1", "Approved")
    admin.set_alias(name, "production", "1")
    assert gate.run(f"{name}@production").decision.permitted


# ------------------------------------------- sender-constrained tokens (RFC 8705)


def _gate_token(arena: Arena, bind_to: Path | None) -> str:
    from trustload.devenv import GATE_IDENTITY
    from trustload.oidc import mint_token, thumbprint_of_file

    return mint_token(
        arena.env.issuer,
        sub=GATE_IDENTITY,
        tenant="A",
        purposes=["credit_scoring"],
        domain="credit",
        role="consumer",
        ttl=300,
        bind_x5t=None if bind_to is None else thumbprint_of_file(bind_to),
    )


def test_hardening_bound_token_replayed_from_other_certificate(arena: Arena, gate: Gate) -> None:
    """A token bound (cnf.x5t#S256) to another workload's certificate is stolen and
    replayed over this workload's own mTLS connection: the Registry answers 401.

    Attack: identity / stolen bound token
    """
    name = arena.good()
    admin_cert, _key = arena.env.cert_paths("admin")
    stolen = _gate_token(arena, admin_cert)
    result = gate.run(f"{name}@production", gate.token_cfg(stolen))
    assert_denied(result, ReasonCode.AUTH_FAILED, cache_dir=gate.cache_dir)
    with arena.reg.client(token=stolen) as http:  # the gate's certificate
        resp = http.get(f"/v1/models/{name}/versions")
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "AUTH_FAILED"


def test_hardening_bound_token_control(arena: Arena, gate: Gate) -> None:
    """Control: a token bound to the presenting certificate is accepted, as is an unbound
    one while ``require_bound_tokens`` is off."""
    name = arena.good()
    gate_cert, _key = arena.env.cert_paths("gate")
    bound = _gate_token(arena, gate_cert)
    assert gate.run(f"{name}@production", gate.token_cfg(bound)).decision.permitted
    with arena.reg.client(token=_gate_token(arena, None)) as http:
        assert http.get(f"/v1/models/{name}/versions").status_code == 200


def test_hardening_require_bound_tokens(tmp_path: Path) -> None:
    """With ``[oidc] require_bound_tokens``, an unbound token is AUTH_FAILED (401); a
    token minted by ``trustload token --bind-cert`` for the presenting certificate, or by
    a ``[registry.dev_token] bind_cert`` config, passes."""
    from tests.support.registry import make_test_env, start_registry
    from trustload.client.api import RegistryClient

    env = make_test_env(tmp_path / "env")
    text = env.registry_config.read_text()
    env.registry_config.write_text(
        text.replace("leeway = 30\n", "leeway = 30\nrequire_bound_tokens = true\n", 1)
    )
    gate_cert, _key = env.cert_paths("gate")
    try:
        with start_registry(env) as reg:
            with reg.client(token=env.token()) as http:
                resp = http.get("/v1/models/nothing/versions")
            assert resp.status_code == 401 and resp.json()["error"]["code"] == "AUTH_FAILED"
            assert "require_bound_tokens" in resp.json()["error"]["message"]
            minted = cli(
                "token", "--config", str(env.registry_config), "--sub", "w", "--tenant", "A",
                "--bind-cert", str(gate_cert),
            )  # fmt: skip
            assert minted.returncode == 0, minted.stderr
            with reg.client(token=minted.stdout.strip()) as http:
                assert http.get("/v1/models/nothing/versions").status_code == 404  # past auth
            cfg = load_client_config(env.gate_config)
            assert cfg.registry.dev_token is not None
            dev = cfg.registry.dev_token.model_copy(update={"bind_cert": gate_cert})
            bound_cfg = cfg.registry.model_copy(update={"url": reg.url, "dev_token": dev})
            with RegistryClient(bound_cfg) as client, pytest.raises(TrustloadError) as got:
                client.list_versions("nothing")
            assert got.value.code is ReasonCode.NOT_FOUND  # authenticated, then not found
    finally:
        env.close()
