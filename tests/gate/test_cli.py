"""``trustload publish``, ``registry stage|alias|revoke|quarantine|release`` and
``verify`` as a user runs them: real processes, exit codes 0/1/2, one JSON document."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.gate.conftest import CONTAINER, DATASET, GIT_SHA, World
from tests.support.cli import run_cli as tl


def publish(
    world: World, model: Path, name: str, version: str, *extra: str | Path
) -> subprocess.CompletedProcess[str]:
    """``trustload publish`` with the world's admin identity, signing key and provenance."""
    env = world.env
    return tl(
        "publish", model, "--name", name, "--version", version,
        "--config", env.admin_config, "--key", env.signing_key,
        "--git-sha", GIT_SHA, "--container-digest", CONTAINER, "--dataset-snapshot", DATASET,
        *extra,
    )  # fmt: skip


def test_publish_govern_verify_through_the_cli(world: World) -> None:
    env = world.env
    model = world.model_file("model.onnx")
    card = world.work / "card.yaml"
    card.write_text(
        "tenant_id: A\ndomain: credit\npurpose:\n  allowed: [credit_scoring]\n"
        "revalidate_by: 2099-06-30T00:00:00Z\nformat: onnx\n"
    )
    pub = publish(
        world, model, "risk", "3", "--card", card, "--not-after", "2099-01-01T00:00:00Z", "--json"
    )
    assert pub.returncode == 0, pub.stderr
    record = json.loads(pub.stdout)
    assert record["stage"] == "Staging" and record["card"]["tenant_id"] == "A"

    # Staging in prod: denied, exit 1, one JSON document naming the reason.
    deny = tl("verify", "risk@3", "--config", env.gate_config, "--json")
    assert deny.returncode == 1, deny.stderr
    assert json.loads(deny.stdout)["reasons"] == ["STAGE_NOT_ALLOWED"]

    assert (
        tl("registry", "stage", "risk@3", "Approved", "--config", env.admin_config).returncode == 0
    )
    alias = tl(
        "registry", "alias", "risk", "production", "3", "--config", env.admin_config, "--json"
    )
    assert alias.returncode == 0, alias.stderr
    assert json.loads(alias.stdout)["version"] == "3"

    ok = tl("verify", "risk@production", "--config", env.gate_config, "--json")
    assert ok.returncode == 0, ok.stderr + ok.stdout
    doc = json.loads(ok.stdout)
    assert (
        doc["decision"] == "permit" and doc["version"] == "3" and doc["event"] == "startup_permit"
    )
    assert doc["artifact_digest"] == record["artifact_digest"]

    human = tl("verify", "risk@production", "--config", env.gate_config)
    assert human.returncode == 0 and human.stdout == ""
    assert "PERMIT risk@production -> risk@3" in human.stderr

    q = tl("registry", "quarantine", "risk@3", "--reason", "drill", "--config", env.admin_config)
    assert q.returncode == 0, q.stderr
    assert tl("verify", "risk@production", "--config", env.gate_config).returncode == 1
    assert tl("registry", "release", "risk@3", "--config", env.admin_config).returncode == 0
    assert tl("verify", "risk@production", "--config", env.gate_config).returncode == 0

    rv = tl("registry", "revoke", "risk@3", "--reason", "incident", "--config", env.admin_config)
    assert rv.returncode == 0, rv.stderr
    gone = tl("verify", "risk@production", "--config", env.gate_config, "--json")
    assert gone.returncode == 1 and "REVOKED" in json.loads(gone.stdout)["reasons"]
    # Revocation is final: release does not lift it, and the refusal exits 1.
    assert tl("registry", "release", "risk@3", "--config", env.admin_config).returncode == 1

    lines = (env.root / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 6
    assert tl("audit", "verify", env.root / "audit.jsonl").returncode == 0


def test_usage_errors_exit_2(world: World) -> None:
    env = world.env
    assert tl("verify", "no-at-sign", "--config", env.gate_config).returncode == 2
    assert tl("verify", "m@1", "--config", world.work / "missing.toml").returncode == 2
    assert (
        tl("registry", "stage", "m@1", "Production", "--config", env.admin_config).returncode == 2
    )
    bad = publish(world, world.work / "absent.onnx", "m", "1")
    assert bad.returncode == 2, bad.stderr


def test_publish_default_card_is_publishers_tenant(world: World) -> None:
    env = world.env
    pub = publish(world, world.model_file(), "m", "1", "--json")
    assert pub.returncode == 0, pub.stderr
    card = json.loads(pub.stdout)["card"]
    assert card["tenant_id"] == "A" and card["purposes_allowed"] == ["credit_scoring"]
    assert card["revalidate_by"] > "2027"
    from trustload.policy import policy_digest

    assert json.loads(pub.stdout)["policy_digest"] == policy_digest(env.policy_dir)
