"""Every way the start-up gate must deny, each with its exact reason code, against a
real Registry process over real mTLS with real signatures (R2, R3, R5, R9)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.client.pki import CA
from tests.gate.conftest import CONTAINER, DATASET, GIT_SHA, World, codes
from trustload.cache import BlobCache
from trustload.cli.publish import publish_model
from trustload.client.api import RegistryClient
from trustload.client.transport import build_ssl_context
from trustload.config import ClientFileConfig
from trustload.decision import Event
from trustload.gate import run_gate


def with_registry(cfg: ClientFileConfig, **update: Any) -> ClientFileConfig:
    return cfg.model_copy(update={"registry": cfg.registry.model_copy(update=update)})


def with_gate(cfg: ClientFileConfig, **update: Any) -> ClientFileConfig:
    return cfg.model_copy(update={"gate": cfg.gate.model_copy(update=update)})


def with_token(world: World, token: str) -> ClientFileConfig:
    path = world.work / f"token-{os.urandom(3).hex()}"
    path.write_text(token)
    return with_registry(world.gate_cfg, token_file=path, dev_token=None)


def claims(world: World, **over: Any) -> dict[str, Any]:
    return world.env.claims(**over)


def card(tenant: str = "A", purposes: tuple[str, ...] = ("credit_scoring",)) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "domain": "credit",
        "purpose": {"allowed": list(purposes)},
        "revalidate_by": "2099-01-01T00:00:00Z",
        "format": "onnx",
    }


def cache_is_empty(cfg: ClientFileConfig) -> bool:
    blobs = cfg.gate.cache_dir / "blobs" / "sha256"
    return not blobs.exists() or not any(blobs.iterdir())


# ------------------------------------------------------------------ channel (R2.1)


def test_no_client_certificate_is_auth_failed(ro: World) -> None:
    cfg = ro.gate_cfg
    client = RegistryClient(
        cfg.registry, ssl_context=build_ssl_context(cfg.registry.ca, None, None)
    )
    result = run_gate(cfg, "risk@production", client=client)
    assert codes(result) == ["AUTH_FAILED"]
    assert result.layout is None and cache_is_empty(cfg)


def test_client_certificate_from_another_ca_is_auth_failed(ro: World) -> None:
    other = CA(ro.work / "rogue", "rogue-ca").issue("gate", server=False)
    cfg = with_registry(ro.gate_cfg, client_cert=other.cert, client_key=other.key)
    assert codes(ro.gate("risk@production", cfg)) == ["AUTH_FAILED"]


@pytest.mark.parametrize(
    ("label", "over", "headers"),
    [
        (
            "expired",
            {
                "iat": int(time.time()) - 900,
                "nbf": int(time.time()) - 900,
                "exp": int(time.time()) - 600,
            },
            None,
        ),
        ("wrong audience", {"aud": "someone-else"}, None),
        ("unknown issuer", {"iss": "https://issuer.evil.example"}, None),
        ("unknown key id", {}, {"kid": "not-a-known-key"}),
        ("over-long lifetime", {"exp": int(time.time()) + 86_400}, None),
    ],
)
def test_bad_tokens_are_auth_failed(
    ro: World, label: str, over: dict[str, Any], headers: Any
) -> None:
    token = ro.env.raw_token(claims(ro, **over), headers=headers)
    result = ro.gate("risk@production", with_token(ro, token))
    assert codes(result) == ["AUTH_FAILED"], label
    audit = ro.gate_cfg.gate.audit_log.read_text()
    assert token not in audit and "Bearer" not in audit


def test_token_file_rotation_is_picked_up(ro: World) -> None:
    cfg = with_token(
        ro,
        ro.env.raw_token(
            claims(
                ro,
                exp=int(time.time()) - 600,
                iat=int(time.time()) - 900,
                nbf=int(time.time()) - 900,
            )
        ),
    )
    assert codes(ro.gate("risk@production", cfg)) == ["AUTH_FAILED"]
    assert cfg.registry.token_file is not None
    cfg.registry.token_file.write_text(ro.env.raw_token(claims(ro)))
    assert ro.gate("risk@production", cfg).decision.permitted


def test_http_url_is_registry_not_allowed(ro: World) -> None:
    url = ro.reg.url.replace("https://", "http://")
    cfg = with_registry(ro.gate_cfg, url=url, allowlist=[url])
    assert codes(ro.gate("risk@production", cfg)) == ["REGISTRY_NOT_ALLOWED"]


def test_host_not_in_allowlist(ro: World) -> None:
    cfg = with_registry(ro.gate_cfg, allowlist=["https://registry.internal.example:8443"])
    result = ro.gate("risk@production", cfg)
    assert codes(result) == ["REGISTRY_NOT_ALLOWED"]
    assert result.decision.event is Event.STARTUP_DENY


def test_registry_down_is_unavailable(prod: World) -> None:
    prod.reg.stop()
    cfg = with_registry(prod.gate_cfg, retries=1, connect_timeout=1.0)
    result = prod.gate("risk@production", cfg)
    assert codes(result) == ["REGISTRY_UNAVAILABLE"]
    line = json.loads(cfg.gate.audit_log.read_text().splitlines()[-1])
    assert line["decision"] == "deny" and line["reasons"] == ["REGISTRY_UNAVAILABLE"]


def test_unknown_model_and_alias_are_not_found(ro: World) -> None:
    assert codes(ro.gate("nope@production")) == ["NOT_FOUND"]
    assert codes(ro.gate("risk@canary")) == ["NOT_FOUND"]


# ----------------------------------------------------------------- governance (R2.3/4)


@pytest.mark.postgres_ok
def test_revoked_is_denied_at_once_without_download(prod: World) -> None:
    with prod.admin() as admin:
        admin.revoke("risk", "1", "leaked training data")
    result = prod.gate("risk@production")
    assert "REVOKED" in codes(result)
    assert cache_is_empty(prod.gate_cfg)
    names = [c.name for c in result.decision.checks]
    assert "signature" not in names and "download" not in names


@pytest.mark.postgres_ok
def test_quarantined_then_released(prod: World) -> None:
    with prod.admin() as admin:
        admin.quarantine("risk", "1", "under investigation")
    assert codes(prod.gate("risk@production")) == ["QUARANTINED"]
    with prod.admin() as admin:
        admin.release("risk", "1")
    assert prod.gate("risk@production").decision.permitted


def test_staging_is_denied_in_prod_and_allowed_in_staging(world: World) -> None:
    world.publish("risk", "1")
    result = world.gate("risk@1")
    assert codes(result) == ["STAGE_NOT_ALLOWED"]
    assert cache_is_empty(world.gate_cfg)
    staging = with_gate(world.gate_cfg, environment="staging")
    assert world.gate("risk@1", staging).decision.permitted


def test_explicit_allowed_stages_for_an_unlisted_environment(world: World) -> None:
    """A name outside the table works only with explicit ``allowed_stages``, which the
    gate honours on every path (early checks, the engine, the policy input)."""
    world.publish("risk", "1")  # Staging
    strict = with_gate(world.gate_cfg, environment="prod-eu", allowed_stages=["Approved"])
    assert codes(world.gate("risk@1", strict)) == ["STAGE_NOT_ALLOWED"]
    loose = with_gate(
        world.gate_cfg, environment="canary-eu", allowed_stages=["Staging", "Approved"]
    )
    result = world.gate("risk@1", loose)
    assert result.decision.permitted, codes(result)
    stage = next(c for c in result.decision.checks if c.name == "stage")
    assert "canary-eu" in stage.detail


@pytest.mark.postgres_ok
def test_archived_is_denied(prod: World) -> None:
    with prod.admin() as admin:
        admin.set_stage("risk", "1", "Archived")
    assert codes(prod.gate("risk@production")) == ["STAGE_NOT_ALLOWED"]


def test_revoked_and_staging_lists_every_code(world: World) -> None:
    world.publish("risk", "1", card=card(purposes=("marketing",)))
    with world.admin() as admin:
        admin.revoke("risk", "1", "bad")
    assert set(codes(world.gate("risk@1"))) == {
        "STAGE_NOT_ALLOWED",
        "REVOKED",
        "PURPOSE_NOT_ALLOWED",
    }


# ---------------------------------------------------------------- tenancy (R2.9, R9)


@pytest.mark.postgres_ok
def test_tenant_cross_is_denied(world: World) -> None:
    admin = world.admin_cfg
    assert admin.registry.dev_token is not None
    b_token = admin.registry.dev_token.model_copy(update={"tenant": "B"})
    as_b = with_registry(admin, dev_token=b_token)
    publish_model(
        as_b,
        world.model_file(),
        name="other",
        version="1",
        key=world.env.signing_key,
        git_sha=GIT_SHA,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
        card=card(tenant="B"),
    )
    with RegistryClient(as_b.registry) as b:
        b.set_stage("other", "1", "Approved")
        b.set_alias("other", "production", "1")
    # A consumer of tenant A cannot even see tenant B's model.
    assert codes(world.gate("other@production")) == ["NOT_FOUND"]
    # Nor can tenant A's admin role: admins govern their own tenant only. (The gate's
    # ABAC, TENANT_MISMATCH, stays behind it: tests/attacks/test_tuf.py's lying card.)
    cfg = world.gate_cfg
    assert cfg.registry.dev_token is not None
    admin_token = cfg.registry.dev_token.model_copy(update={"role": "admin"})
    result = world.gate("other@production", with_registry(cfg, dev_token=admin_token))
    assert codes(result) == ["NOT_FOUND"]


def test_purpose_not_allowed(world: World) -> None:
    world.publish("risk", "1", card=card(purposes=("marketing",)))
    world.release_to_prod("risk", "1")
    assert codes(world.gate("risk@production")) == ["PURPOSE_NOT_ALLOWED"]


# ------------------------------------------------------------ integrity (R5, R9)


@pytest.mark.postgres_ok
def test_one_byte_changed_in_registry_blob_store(prod: World) -> None:
    rec = prod.gate("risk@1").record
    assert rec is not None
    # Fresh gate cache: the Registry's copy is the only one.
    blob = prod.reg.blob_path(rec.artifact_digest)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    cfg = with_gate(prod.gate_cfg, cache_dir=prod.work / "cold-cache")
    result = prod.gate("risk@production", cfg)
    assert codes(result) == ["DIGEST_MISMATCH"]
    assert cache_is_empty(cfg)


def _flip_cached(cfg: ClientFileConfig, digest: str) -> Path:
    path = BlobCache(cfg.gate.cache_dir).path_for(digest)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[7] ^= 0x40
    path.write_bytes(bytes(data))
    return path


def test_one_byte_changed_in_gate_cache_is_evicted_and_refetched(prod: World) -> None:
    first = prod.gate("risk@production")
    assert first.decision.permitted and first.record is not None
    _flip_cached(prod.gate_cfg, first.record.artifact_digest)
    second = prod.gate("risk@production")
    assert second.decision.permitted, second.decision.to_json()
    download = next(c for c in second.decision.checks if c.name == "download")
    assert "1 evicted" in download.detail


def test_bad_cache_and_bad_registry_copy_is_digest_mismatch(prod: World) -> None:
    first = prod.gate("risk@production")
    assert first.record is not None
    digest = first.record.artifact_digest
    _flip_cached(prod.gate_cfg, digest)
    blob = prod.reg.blob_path(digest)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[0] ^= 0xFF
    blob.write_bytes(bytes(data))
    assert codes(prod.gate("risk@production")) == ["DIGEST_MISMATCH"]


def test_tampered_cached_signature_is_refetched(prod: World) -> None:
    first = prod.gate("risk@production")
    assert first.record is not None and first.record.signature_digest is not None
    _flip_cached(prod.gate_cfg, first.record.signature_digest)
    assert prod.gate("risk@production").decision.permitted


def test_policy_drift_is_denied(prod: World) -> None:
    rego = sorted(prod.gate_cfg.gate.policy_dir.glob("*.rego"))[0]
    rego.write_text(rego.read_text() + "\n# drift: edited in the pod\n")
    assert codes(prod.gate("risk@production")) == ["POLICY_DIGEST_MISMATCH"]


def test_runtime_container_digest_must_match_record(ro: World) -> None:
    cfg = with_gate(ro.gate_cfg, runtime_container_digest="sha256:" + "9" * 64)
    assert codes(ro.gate("risk@production", cfg)) == ["ATTESTATION_MISMATCH"]


def test_signature_by_untrusted_key_is_denied(ro: World) -> None:
    from trustload.crypto.keys import generate_keypair

    _, other_pub = generate_keypair(ro.work / "stranger")
    cfg = with_gate(ro.gate_cfg, trusted_keys=[other_pub])
    result = ro.gate("risk@production", cfg)
    assert "SIGNATURE_INVALID" in codes(result)
    assert result.layout is None


def test_directory_model_permit_and_tamper(world: World) -> None:
    model = world.work / "dirmodel"
    (model / "sub").mkdir(parents=True)
    (model / "model.onnx").write_bytes(os.urandom(10_000))
    (model / "sub" / "tokenizer.json").write_bytes(b'{"vocab": []}')
    rec = world.publish("dirm", "1", path=model)
    assert rec.kind == "directory" and len(rec.files) == 2
    world.release_to_prod("dirm", "1")
    result = world.gate("dirm@production")
    assert result.decision.permitted, result.decision.to_json()
    assert result.layout is not None and result.layout.kind == "directory"
    assert sorted(rel for rel, _ in result.layout.files) == ["model.onnx", "sub/tokenizer.json"]
    entry = next(f for f in rec.files if f.path == "model.onnx")
    blob = world.reg.blob_path(f"sha256:{entry.sha256}")
    os.chmod(blob, 0o644)
    blob.write_bytes(b"x" + blob.read_bytes()[1:])
    cold = with_gate(world.gate_cfg, cache_dir=world.work / "cold")
    assert codes(world.gate("dirm@production", cold)) == ["DIGEST_MISMATCH"]


# ------------------------------------------------------------ anti-downgrade, chaos


@pytest.mark.postgres_ok
def test_downgrade_blocked_unless_alias_moved(world: World) -> None:
    for v in ("1", "2"):
        world.publish("risk", v)
    world.release_to_prod("risk", "2")
    with world.admin() as admin:
        admin.set_stage("risk", "1", "Approved")
    assert world.gate("risk@production").decision.permitted
    assert codes(world.gate("risk@1")) == ["DOWNGRADE_BLOCKED"]
    with world.admin() as admin:
        admin.set_alias("risk", "production", "1", change_ticket="CHG-7")
    assert world.gate("risk@production").decision.permitted


def test_revoked_during_warmup_denies(prod: World) -> None:
    def warm(result: Any) -> None:
        assert result.layout is not None
        with prod.admin() as admin:
            admin.revoke("risk", "1", "chaos drill")

    result = prod.gate("risk@production", warmup_hook=warm)
    assert not result.decision.permitted and "REVOKED" in codes(result)
    assert result.layout is None
    state_files = list(prod.gate_cfg.gate.state_dir.glob("trusted-*.json"))
    assert state_files == []


def test_rollback_event_and_audit_only_on_request(ro: World) -> None:
    result = ro.gate("risk@production", event=Event.ROLLBACK_EXECUTE, record_audit=False)
    assert result.decision.event is Event.ROLLBACK_EXECUTE
    assert not ro.gate_cfg.gate.audit_log.exists()


def test_unwritable_cache_is_a_denial_not_a_crash(ro: World) -> None:
    blocker = ro.work / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    cfg = with_gate(ro.gate_cfg, cache_dir=blocker)
    result = ro.gate("risk@production", cfg)
    assert codes(result) == ["REGISTRY_UNAVAILABLE"]
    assert result.layout is None


def _registry_blob(world: World, digest: str) -> Path:
    blob = world.reg.blob_path(digest)
    os.chmod(blob, 0o644)
    return blob


@pytest.mark.parametrize("how", ["longer", "shorter"])
def test_registry_blob_of_the_wrong_size_is_digest_mismatch(prod: World, how: str) -> None:
    rec = prod.gate("risk@1", with_gate(prod.gate_cfg, cache_dir=prod.work / "c0")).record
    assert rec is not None
    blob = _registry_blob(prod, rec.artifact_digest)
    data = blob.read_bytes()
    blob.write_bytes(data + b"trailing bytes" if how == "longer" else data[:-100])
    result = prod.gate("risk@production", with_gate(prod.gate_cfg, cache_dir=prod.work / "c1"))
    assert codes(result) == ["DIGEST_MISMATCH"], result.decision.to_json()


def test_interrupted_download_is_resumed_from_the_real_registry(prod: World) -> None:
    rec = prod.gate("risk@1", with_gate(prod.gate_cfg, cache_dir=prod.work / "c0")).record
    assert rec is not None
    cfg = prod.gate_cfg
    blobs = cfg.gate.cache_dir / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    data = prod.reg.blob_path(rec.artifact_digest).read_bytes()
    hexd = rec.artifact_digest.removeprefix("sha256:")
    (blobs / f".{hexd}.partial").write_bytes(data[: len(data) // 3])  # a killed earlier pull
    result = prod.gate("risk@production", cfg)
    assert result.decision.permitted, result.decision.to_json()
    download = next(c for c in result.decision.checks if c.name == "download")
    assert "1 resumed" in download.detail
    assert (blobs / hexd).read_bytes() == data
