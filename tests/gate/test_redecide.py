"""gate.redecide: the whole decision again for a version already verified and held in
memory, against a real Registry (the function refresh, SIGHUP and the post-warm-up
re-check call). Nothing is downloaded again: the cache is emptied before re-deciding."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from tests.attacks.helpers import with_gate
from tests.gate.conftest import World
from trustload.client.api import RegistryClient
from trustload.decision import ReasonCode, utc_now
from trustload.gate import GateResult, recheck, redecide


def _admitted(world: World) -> GateResult:
    result = world.gate("risk@production")
    assert result.decision.permitted and result.held is not None
    # Prove the re-decision needs no bytes: nothing is left to re-read or re-download.
    shutil.rmtree(world.gate_cfg.gate.cache_dir)
    return result


def _record(world: World):  # type: ignore[no-untyped-def]
    with RegistryClient(world.gate_cfg.registry) as client:
        return client.get_version("risk", "1")


def test_unchanged_world_still_permits_without_the_bytes(ro: World) -> None:
    result = _admitted(ro)
    assert result.held is not None
    again = redecide(ro.gate_cfg, result.held, _record(ro))
    assert again.permitted, again.to_json()["reasons"]
    assert not (ro.gate_cfg.gate.cache_dir / "blobs").exists()  # nothing fetched
    names = [c.name for c in again.checks]
    assert names[0] == "freshness" and names[-1] == "policy"
    with RegistryClient(ro.gate_cfg.registry) as client:
        assert recheck(ro.gate_cfg, client, result.held, "recheck").ok


def test_policy_bundle_on_disk_now(ro: World, tmp_path: Path) -> None:
    result = _admitted(ro)
    assert result.held is not None
    edited = tmp_path / "policy"
    shutil.copytree(ro.env.policy_dir, edited)
    rego = sorted(edited.glob("*.rego"))[0]
    rego.write_text(rego.read_text() + "\n# drift\n")
    cfg = with_gate(ro.gate_cfg, policy_dir=edited)
    assert ReasonCode.POLICY_DIGEST_MISMATCH in redecide(cfg, result.held, _record(ro)).reasons
    rego.write_text("package trustload\nthis is not rego {{{\n")
    broken = redecide(cfg, result.held, _record(ro))
    assert broken.reasons == [ReasonCode.POLICY_DIGEST_MISMATCH], broken.to_json()
    assert "unusable" in next(c.detail for c in broken.checks if not c.ok)


def test_clock_now_and_governance_now(prod: World) -> None:
    result = _admitted(prod)
    assert result.held is not None
    later = utc_now() + timedelta(days=400 * 100)  # past the card and any window
    late = redecide(prod.gate_cfg, result.held, _record(prod), now=later)
    assert ReasonCode.REVALIDATION_OVERDUE in late.reasons
    with prod.admin() as admin:
        admin.quarantine("risk", "1", "drill")
    assert ReasonCode.QUARANTINED in redecide(prod.gate_cfg, result.held, _record(prod)).reasons
    with prod.admin() as admin:
        admin.release("risk", "1")
        admin.set_stage("risk", "1", "Archived")
    archived = redecide(prod.gate_cfg, result.held, _record(prod))
    assert ReasonCode.STAGE_NOT_ALLOWED in archived.reasons
