"""Governance and policy attacks: what the Registry says about a version, and the policy
the runtime enforces, must both be honoured (R1, R2.3, R2.4, R2.7, R9)."""

from __future__ import annotations

from tests.attacks.helpers import Arena, Gate, assert_denied, with_gate
from trustload.decision import ReasonCode


def test_governance_revoked_version_still_aliased(arena: Arena, gate: Gate) -> None:
    """A revoked version that the `production` alias still points at.

    Attack: governance / revocation
    """
    name = arena.good()
    arena.admin().revoke(name, "1", "leaked")
    assert_denied(gate.run(f"{name}@production"), ReasonCode.REVOKED, cache_dir=gate.cache_dir)


def test_governance_quarantined_version(arena: Arena, gate: Gate) -> None:
    """A quarantined version requested by number.

    Attack: governance / revocation
    """
    name = arena.good()
    arena.admin().quarantine(name, "1", "investigating")
    assert_denied(gate.run(f"{name}@1"), ReasonCode.QUARANTINED, cache_dir=gate.cache_dir)


def test_governance_staging_version_in_production(arena: Arena, gate: Gate) -> None:
    """A version still in Staging requested by a production gate.

    Attack: governance / stage
    """
    name = arena.name()
    arena.publish(name, "1", arena.model_file(), stage=None, alias=None)
    assert_denied(gate.run(f"{name}@1"), ReasonCode.STAGE_NOT_ALLOWED, cache_dir=gate.cache_dir)


def test_governance_policy_drift_in_the_pod(arena: Arena, gate: Gate, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The runtime policy bundle edited in the pod without updating the Registry.

    Attack: governance / policy drift
    """
    import shutil

    name = arena.good()
    policy = tmp_path / "policy"
    shutil.copytree(arena.env.policy_dir, policy)
    rego = sorted(policy.glob("*.rego"))[0]
    rego.write_text(rego.read_text() + "\n# edited in the pod\n")
    cfg = with_gate(gate.cfg, policy_dir=policy)
    assert_denied(
        gate.run(f"{name}@production", cfg),
        ReasonCode.POLICY_DIGEST_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_governance_other_serving_image(arena: Arena, gate: Gate) -> None:
    """The model admitted into a serving image other than the one its provenance names.

    Attack: governance / provenance
    """
    name = arena.good()
    cfg = with_gate(gate.cfg, runtime_container_digest="sha256:" + "9" * 64)
    assert_denied(
        gate.run(f"{name}@production", cfg),
        ReasonCode.ATTESTATION_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_governance_misnamed_environment_admits_staging(arena: Arena, gate: Gate) -> None:
    """A production pod whose environment is spelled `prd` (or `production-eu`, or a typo).

    Such a name used to count as non-production and admit Staging. Loading that config is
    now a configuration error (exit 2); a config built around the loader still denies.

    Attack: governance / stage
    """
    import pytest

    from trustload.config import load_client_config
    from trustload.errors import UsageError

    name = arena.name()
    arena.publish(name, "1", arena.model_file(), stage=None, alias=None)  # Staging
    for env in ("prd", "production-eu", "prdo"):
        toml = gate.root / f"gate-{env}.toml"
        text = arena.env.gate_config.read_text()
        toml.write_text(text.replace('environment = "prod"', f'environment = "{env}"'))
        with pytest.raises(UsageError, match="allowed_stages"):
            load_client_config(toml)
        assert_denied(
            gate.run(f"{name}@1", with_gate(gate.cfg, environment=env)),
            ReasonCode.STAGE_NOT_ALLOWED,
            cache_dir=gate.cache_dir,
        )
