"""The R3 flow end to end: a real Registry process over mTLS, real signatures."""

from __future__ import annotations

import json

import pytest

from tests.gate.conftest import World

pytestmark = pytest.mark.postgres_ok


def test_permit_by_alias_and_by_version(world: World) -> None:
    rec = world.publish("risk", "1")
    world.release_to_prod("risk", "1")
    by_alias = world.gate("risk@production")
    assert by_alias.decision.permitted, by_alias.decision.to_json()
    assert by_alias.record is not None and by_alias.record.version == "1"
    assert by_alias.layout is not None and by_alias.files == rec.files
    by_version = world.gate("risk@1")
    assert by_version.decision.permitted, by_version.decision.to_json()
    doc = by_version.decision.to_json()
    assert doc["decision"] == "permit" and doc["reasons"] == []
    assert doc["tenant"] == "A" and doc["artifact_digest"] == rec.artifact_digest
    lines = world.gate_cfg.gate.audit_log.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["event"] == "startup_permit"
