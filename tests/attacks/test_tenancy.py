"""Tenancy attacks on the Registry itself: a tenant that names another tenant's digests or
model names, and re-publishing revoked bytes (INTERFACE.md "Rules that close known
attacks"). Tenant A is the gate's tenant; tenant B is the victim (or the other owner).

Each scenario compares the attacker's answer with the answer for something nobody has
(same status, same body once the differing identifier is masked): the Registry must not
be an oracle. Each ends with the real gate of tenant A, which must not load anything."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.attacks.helpers import Arena, Gate, assert_denied, put_blob
from trustload.decision import ReasonCode

HEX = re.compile(r"[0-9a-f]{64}")


def masked(resp: httpx.Response, *secrets: str) -> tuple[int, str]:
    """Status and body with the identifiers that legitimately differ masked out."""
    body = resp.text
    for s in secrets:
        body = body.replace(s, "<id>")
    return resp.status_code, HEX.sub("<hex>", body)


def b_publishes(arena: Arena, path: Path, name: str | None = None) -> dict[str, Any]:
    """Tenant B publishes ``path`` honestly (approved, alias production); its record."""
    name = name or arena.name("b")
    with arena.http("B") as b:
        resp = arena.raw_publish(b, name, "1", path, tenant="B")
        assert resp.status_code == 201, resp.text
        assert b.put(f"/v1/models/{name}/versions/1/stage", json={"stage": "Approved"}).is_success
        assert b.put(f"/v1/models/{name}/aliases/production", json={"version": "1"}).is_success
        return dict(resp.json())


def unknown_file(arena: Arena, size: int, name: str = "model.onnx") -> Path:
    """Bytes of this size that nobody ever uploaded."""
    return arena.model_file(os.urandom(size), name)


def assert_blob_hidden(arena: Arena, hexdigest: str) -> None:
    """A's GET and HEAD of B's blob answer exactly like a blob nobody uploaded."""
    nobody = os.urandom(32).hex()
    for role in ("consumer", "publisher", "admin"):
        with arena.http("A", role) as a:
            for method in ("GET", "HEAD"):
                got = a.request(method, f"/v1/blobs/sha256/{hexdigest}")
                ref = a.request(method, f"/v1/blobs/sha256/{nobody}")
                assert got.status_code == 404
                assert masked(got) == masked(ref)


def test_tenancy_reference_other_tenants_artifact(arena: Arena, gate: Gate) -> None:
    """Tenant A publishes a version whose artifact (files[]) is tenant B's blob.

    Attack: tenancy / blob reference
    """
    victim = arena.model_file()
    rec = b_publishes(arena, victim)
    b_hex = rec["artifact_digest"].removeprefix("sha256:")
    name, control = arena.name("a"), arena.name("a")
    with arena.http("A", "publisher") as a:
        attack = arena.raw_publish(a, name, "1", victim, tenant="A", upload_model=False)
        ref = arena.raw_publish(
            a,
            control,
            "1",
            unknown_file(arena, victim.stat().st_size),
            tenant="A",
            upload_model=False,
        )
    assert attack.status_code == 400, attack.text
    assert masked(attack, name) == masked(ref, control)
    assert_blob_hidden(arena, b_hex)
    assert_denied(gate.run(f"{name}@1"), ReasonCode.NOT_FOUND, cache_dir=gate.cache_dir)


def _evidence_attack(arena: Arena, field: str) -> tuple[httpx.Response, httpx.Response, str]:
    """A publishes its own model naming B's evidence blob in ``field``; and the same
    request naming a digest nobody uploaded."""
    rec = b_publishes(arena, arena.model_file())
    name, control = arena.name("a"), arena.name("a")
    with arena.http("A", "publisher") as a:
        attack = arena.raw_publish(
            a, name, "1", arena.model_file(), tenant="A", **{field: rec[field]}
        )
        nobody = {field: f"sha256:{os.urandom(32).hex()}"}
        ref = arena.raw_publish(a, control, "1", arena.model_file(), tenant="A", **nobody)
    assert attack.status_code == 400, attack.text
    assert masked(attack, name) == masked(ref, control)
    assert_blob_hidden(arena, rec[field].removeprefix("sha256:"))
    return attack, ref, name


def test_tenancy_reference_other_tenants_signature(arena: Arena, gate: Gate) -> None:
    """Tenant A names tenant B's signature bundle as its version's `signature_digest`.

    Attack: tenancy / blob reference
    """
    _, _, name = _evidence_attack(arena, "signature_digest")
    assert_denied(gate.run(f"{name}@1"), ReasonCode.NOT_FOUND, cache_dir=gate.cache_dir)


def test_tenancy_reference_other_tenants_attestation(arena: Arena, gate: Gate) -> None:
    """Tenant A names tenant B's attestation as its version's `attestation_digest`.

    Attack: tenancy / blob reference
    """
    _, _, name = _evidence_attack(arena, "attestation_digest")
    assert_denied(gate.run(f"{name}@1"), ReasonCode.NOT_FOUND, cache_dir=gate.cache_dir)


def test_tenancy_reference_other_tenants_manifest_files(arena: Arena, gate: Gate) -> None:
    """Tenant A publishes a directory whose manifest lists tenant B's weight files (their
    digests show in B's manifest); A uploads only the manifest it computed.

    Attack: tenancy / blob reference
    """
    victim = arena.model_dir({"weights.bin": os.urandom(9000), "tokenizer.json": b'{"v": 1}'})
    rec = b_publishes(arena, victim)
    decoy = arena.model_dir({"weights.bin": os.urandom(9000), "tokenizer.json": b'{"v": 2}'})
    name, control = arena.name("a"), arena.name("a")
    with arena.http("A", "publisher") as a:
        attack = arena.raw_publish(a, name, "1", victim, tenant="A", upload_model=False)
        ref = arena.raw_publish(a, control, "1", decoy, tenant="A", upload_model=False)
    assert attack.status_code == 400, attack.text
    assert masked(attack, name) == masked(ref, control)
    for f in rec["files"]:
        assert_blob_hidden(arena, f["sha256"])
    assert_denied(gate.run(f"{name}@1"), ReasonCode.NOT_FOUND, cache_dir=gate.cache_dir)


def test_tenancy_upload_bytes_another_tenant_has(arena: Arena, gate: Gate) -> None:
    """Tenant A uploads bytes tenant B already stored (or claims their digest without
    them), to learn whether B has them.

    Attack: tenancy / blob existence oracle
    """
    secret = os.urandom(4096)
    rec = b_publishes(arena, arena.model_file(secret))
    b_hex = rec["artifact_digest"].removeprefix("sha256:")
    fresh = os.urandom(4096)
    with arena.http("A", "publisher") as a:
        # A claims B's digest with other bytes, and an unknown digest likewise.
        lie = a.post(f"/v1/blobs/sha256/{b_hex}", content=os.urandom(4096))
        unknown = os.urandom(32).hex()
        lie_ref = a.post(f"/v1/blobs/sha256/{unknown}", content=os.urandom(4096))
        assert lie.status_code == lie_ref.status_code == 400
        assert masked(lie) == masked(lie_ref)
        # A uploads B's exact bytes, and bytes nobody has: the same answer.
        dup = a.post(f"/v1/blobs/sha256/{b_hex}", content=secret)
        new = put_blob(a, fresh)
        assert dup.status_code == new.status_code == 201, (dup.text, new.text)
        assert masked(dup) == masked(new)
        assert dup.headers.keys() == new.headers.keys()
        # Only A's own second upload says "you already have it".
        assert a.post(f"/v1/blobs/sha256/{b_hex}", content=secret).status_code == 200
    with arena.http("A", "admin") as a:
        events = a.get("/v1/governance-log", params={"limit": 1000}).json()["events"]
    assert not any(e["model"] == rec["name"] for e in events)  # nothing of B's leaks
    assert not any(e["detail"].get("digest") == rec["signature_digest"] for e in events)
    assert_denied(gate.run(f"{rec['name']}@1"), ReasonCode.NOT_FOUND, cache_dir=gate.cache_dir)


# ---------------------------------------------------------------- revocation binds bytes


def test_governance_revoked_bytes_republished(arena: Arena, gate: Gate) -> None:
    """A revoked version's signed blobs re-published as a new version and as another model.

    Attack: governance / revocation bypass
    """
    path = arena.model_file()
    name = arena.name("risk")
    arena.publish(name, "1", path)
    arena.admin().revoke(name, "1", "signing key leaked")
    other = arena.name("fraud-detector")
    with arena.http("A") as a, arena.http("B") as b:
        for client, tenant, model, version in (
            (a, "A", name, "2"),
            (a, "A", other, "7"),
            (b, "B", arena.name("elsewhere"), "1"),
        ):
            resp = arena.raw_publish(client, model, version, path, tenant=tenant)
            assert resp.status_code == 409, resp.text
            assert resp.json()["error"]["code"] == "CONFLICT"
            assert "revoked" in resp.json()["error"]["message"]
            assert client.get(f"/v1/models/{model}/versions/{version}").status_code == 404
        # Tenant C, which does not hold the bytes, learns nothing, not even "revoked":
        # naming the digest answers like naming one nobody uploaded.
        probe, control = arena.name("probe"), arena.name("probe")
        size = path.stat().st_size
        with arena.http("C") as c:
            c_hidden = arena.raw_publish(c, probe, "1", path, tenant="C", upload_model=False)
            c_ref = arena.raw_publish(
                c, control, "1", unknown_file(arena, size), tenant="C", upload_model=False
            )
        assert c_hidden.status_code == 400, c_hidden.text
        assert masked(c_hidden, probe) == masked(c_ref, control)
    assert_denied(gate.run(f"{name}@2"), ReasonCode.NOT_FOUND, cache_dir=gate.cache_dir)
    assert_denied(gate.run(f"{other}@7"), ReasonCode.NOT_FOUND, cache_dir=gate.cache_dir)


def test_governance_digest_revoked_under_another_name(arena: Arena, gate: Gate) -> None:
    """The same bytes published as two models (and by another tenant) before one of them
    is revoked: the others must read revoked too, with the original reason.

    Attack: governance / revocation bypass
    """
    path = arena.model_file()
    risk, fraud = arena.name("risk"), arena.name("fraud")
    arena.publish(risk, "1", path)
    arena.publish(fraud, "7", path)
    b_rec = b_publishes(arena, path)
    arena.admin().revoke(risk, "1", "trained on poisoned data")
    with arena.http("A", "consumer") as a:
        doc = a.get(f"/v1/models/{fraud}/resolve/production").json()
        listed = a.get(f"/v1/models/{fraud}/versions").json()["versions"]
    assert doc["revoked"] is True and doc["revoked_reason"] == "trained on poisoned data"
    assert listed[0]["revoked"] is True
    with arena.http("B", "consumer") as b:
        theirs = b.get(f"/v1/models/{b_rec['name']}/versions/1").json()
    assert theirs["revoked"] is True and theirs["revoked_reason"] == "trained on poisoned data"
    with arena.http("A") as a:  # and no alias or approval can bring it back
        assert a.put(f"/v1/models/{fraud}/aliases/canary", json={"version": "7"}).status_code == 409
        stage = a.put(f"/v1/models/{fraud}/versions/7/stage", json={"stage": "Approved"})
        assert stage.status_code == 409
    assert_denied(gate.run(f"{fraud}@production"), ReasonCode.REVOKED, cache_dir=gate.cache_dir)


# ---------------------------------------------------------------- names belong to a tenant


def test_tenancy_same_model_name_in_two_tenants(arena: Arena, gate: Gate) -> None:
    """Tenant A publishes a name tenant B already uses (squatting / existence oracle):
    it must be A's own model, as if the name were free, and each sees only its own.

    Attack: tenancy / model names
    """
    name, free = arena.name("risk"), arena.name("risk")
    b_rec = b_publishes(arena, arena.model_file(), name)
    with arena.http("A", "publisher") as a:
        taken = arena.raw_publish(a, name, "1", arena.model_file(), tenant="A")
        control = arena.raw_publish(a, free, "1", arena.model_file(), tenant="A")
    assert taken.status_code == control.status_code == 201, taken.text
    assert set(taken.json()) == set(control.json())
    assert taken.json()["artifact_digest"] != b_rec["artifact_digest"]
    with arena.http("A") as a:
        assert a.put(f"/v1/models/{name}/versions/1/stage", json={"stage": "Approved"}).is_success
        assert a.put(f"/v1/models/{name}/aliases/production", json={"version": "1"}).is_success
        mine = a.get(f"/v1/models/{name}/versions").json()["versions"]
        log = a.get("/v1/governance-log", params={"model": name}).json()["events"]
    assert [v["artifact_digest"] for v in mine] == [taken.json()["artifact_digest"]]
    assert {e["action"] for e in log} == {"publish", "stage", "alias"}
    assert all(e["detail"].get("tenant_id", "A") == "A" for e in log)
    with arena.http("B", "consumer") as b:
        theirs = b.get(f"/v1/models/{name}/resolve/production").json()
    assert theirs["artifact_digest"] == b_rec["artifact_digest"]
    permit = gate.run(f"{name}@production")
    assert permit.decision.permitted, permit.decision.to_json()
    assert permit.record is not None
    assert permit.record.artifact_digest == taken.json()["artifact_digest"]
    # B's version 2 of "the same" name does not exist for A.
    with arena.http("B") as b:
        assert arena.raw_publish(b, name, "2", arena.model_file(), tenant="B").status_code == 201
    assert_denied(gate.run(f"{name}@2"), ReasonCode.NOT_FOUND, cache_dir=gate.cache_dir)


def test_tenancy_admin_governs_other_tenants_model(arena: Arena, gate: Gate) -> None:
    """Tenant A's admin stages, aliases, revokes, quarantines and reads the history of
    tenant B's model: every answer is that of a model nobody has, and B's is untouched.

    Attack: tenancy / model names
    """
    name, nobody = arena.name("b"), f"absent-{uuid.uuid4().hex[:10]}"
    b_publishes(arena, arena.model_file(), name)
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("PUT", "/v1/models/{}/versions/1/stage", {"stage": "Archived"}),
        ("PUT", "/v1/models/{}/aliases/production", {"version": "1"}),
        ("POST", "/v1/models/{}/versions/1/revoke", {"reason": "hostile"}),
        ("POST", "/v1/models/{}/versions/1/quarantine", {"reason": "hostile"}),
        ("POST", "/v1/models/{}/versions/1/release", None),
        ("GET", "/v1/models/{}/versions/1/stage-history", None),
        ("GET", "/v1/models/{}/versions", None),
        ("GET", "/v1/models/{}/resolve/production", None),
    ]
    with arena.http("A") as a:
        for method, path, body in calls:
            got = a.request(method, path.format(name), json=body)
            ref = a.request(method, path.format(nobody), json=body)
            assert got.status_code == 404, (path, got.text)
            assert masked(got, name) == masked(ref, nobody)
        log = a.get("/v1/governance-log", params={"model": name}).json()["events"]
    assert log == []  # nothing happened in A's tenant, and B's history is not A's
    with arena.http("B", "consumer") as b:
        rec = b.get(f"/v1/models/{name}/resolve/production").json()
    assert rec["stage"] == "Approved" and rec["revoked"] is False and rec["quarantined"] is False
    assert_denied(gate.run(f"{name}@production"), ReasonCode.NOT_FOUND, cache_dir=gate.cache_dir)
