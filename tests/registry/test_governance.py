"""Governance rules of the Registry: immutability, stages, aliases, revocation,
quarantine, separation of duties, tenancy (R9 tenant cross) and the governance log."""

from __future__ import annotations

import uuid

import pytest

from tests.support.registry import default_card, publish_bytes, sha256_hex, upload_blob

pytestmark = pytest.mark.postgres_ok


def _name() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


def _code(resp) -> str:
    return resp.json()["error"]["code"]


@pytest.fixture
def model(shared_registry):
    """A fresh model of tenant A with version 1 published by an admin."""
    name = _name()
    with shared_registry.admin() as c:
        resp = publish_bytes(c, name, "1", f"model {name} v1".encode())
        assert resp.status_code == 201, resp.text
    return name


def test_publish_record_has_every_field(shared_registry):
    name = _name()
    with shared_registry.publisher() as c:
        resp = publish_bytes(c, name, "1", b"weights")
    assert resp.status_code == 201, resp.text
    rec = resp.json()
    expected = {
        "name",
        "version",
        "stage",
        "artifact_digest",
        "artifact_size",
        "kind",
        "format",
        "policy_digest",
        "git_sha",
        "container_digest",
        "dataset_snapshot",
        "revoked",
        "revoked_reason",
        "quarantined",
        "quarantine_reason",
        "card",
        "signature_digest",
        "attestation_digest",
        "files",
        "artifact_uri",
        "alias",
        "alias_revision",
        "change_ticket",
        "publisher",
        "created_at",
        "served_at",
    }
    assert set(rec) == expected
    assert rec["stage"] == "Staging"
    assert rec["revoked"] is False and rec["quarantined"] is False
    assert rec["artifact_size"] == len(b"weights")
    assert rec["card"]["tenant_id"] == "A"
    assert rec["publisher"].startswith("spiffe://trustload.local/ns/governance/sa/admin | ")
    with shared_registry.consumer() as c:
        got = c.get(f"/v1/models/{name}/versions/1").json()
    assert got["served_at"] >= rec["created_at"]
    assert {k: v for k, v in got.items() if k != "served_at"} == {
        k: v for k, v in rec.items() if k != "served_at"
    }


def test_versions_are_immutable(shared_registry, model):
    with shared_registry.admin() as c:
        resp = publish_bytes(c, model, "1", b"other bytes")
    assert resp.status_code == 409
    assert _code(resp) == "CONFLICT"


def test_publish_refuses_evidence_in_another_role(shared_registry):
    """The model file cannot double as its own signature or attestation (one signed
    statement may still serve as both signature and attestation)."""
    data = f"model {_name()}".encode()
    digest = f"sha256:{sha256_hex(data)}"
    with shared_registry.publisher() as c:
        for field in ("signature_digest", "attestation_digest"):
            resp = publish_bytes(c, _name(), "1", data, **{field: digest})
            assert resp.status_code == 400, resp.text
            assert field in resp.text and "model blob" in resp.text
        both = upload_blob(c, b'{"one": "signed statement"}')
        data2 = f"model {_name()}".encode()
        resp = publish_bytes(c, _name(), "1", data2, signature_digest=both, attestation_digest=both)
        assert resp.status_code == 201, resp.text


def test_publish_refuses_unknown_blobs_and_inconsistent_sizes(shared_registry):
    name = _name()
    with shared_registry.publisher() as c:
        resp = publish_bytes(c, name, "1", b"abc", artifact_size=4)
        assert resp.status_code == 400 and _code(resp) == "BAD_REQUEST"
        resp = publish_bytes(c, name, "1", b"abc", signature_digest="sha256:" + "e" * 64)
        assert resp.status_code == 400 and "signature_digest" in resp.text
        resp = publish_bytes(c, name, "1", b"abc", kind="tarball")
        assert resp.status_code == 422 and _code(resp) == "BAD_REQUEST"
        resp = publish_bytes(c, name, "1", b"abc", unexpected="field")
        assert resp.status_code == 422
        digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        for path in ("../etc/passwd", "/abs", "a//b", ""):
            files = [{"path": path, "sha256": digest, "size": 3}]
            resp = publish_bytes(c, name, "1", b"abc", files=files)
            assert resp.status_code == 400, path
        assert c.get(f"/v1/models/{name}/versions").status_code == 404


def test_publisher_cannot_publish_for_another_tenant(shared_registry):
    with shared_registry.publisher(tenant="A") as c:
        resp = publish_bytes(c, _name(), "1", b"x", card=default_card("B"))
    assert resp.status_code == 400
    assert "tenant" in resp.json()["error"]["message"]


def test_consumer_cannot_publish_or_upload(shared_registry):
    with shared_registry.consumer() as c:
        resp = c.post(f"/v1/blobs/sha256/{'a' * 64}", content=b"x")
        assert resp.status_code == 403 and _code(resp) == "FORBIDDEN"
        resp = c.post(f"/v1/models/{_name()}/versions", json={"version": "1"})
        assert resp.status_code in (403, 422)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/versions/1/stage", {"stage": "Approved"}),
        ("PUT", "/aliases/production", {"version": "1"}),
        ("POST", "/versions/1/revoke", {"reason": "r"}),
        ("POST", "/versions/1/quarantine", {"reason": "r"}),
        ("POST", "/versions/1/release", {}),
    ],
)
def test_publisher_cannot_govern(shared_registry, model, method, path, body):
    """Separation of duties: a publisher cannot approve (or otherwise govern) its own
    model; the refusal is itself in the governance log."""
    with shared_registry.publisher() as c:
        resp = c.request(method, f"/v1/models/{model}{path}", json=body)
    assert resp.status_code == 403
    assert _code(resp) == "FORBIDDEN"
    with shared_registry.admin() as c:
        rec = c.get(f"/v1/models/{model}/versions/1").json()
        events = c.get("/v1/governance-log", params={"model": model}).json()["events"]
    assert rec["stage"] == "Staging" and not rec["revoked"] and not rec["quarantined"]
    assert events[-1]["action"] == "denied"


def test_publisher_cannot_read_governance_log(shared_registry):
    with shared_registry.publisher() as c:
        resp = c.get("/v1/governance-log")
    assert resp.status_code == 403


def test_stage_changes_and_history(shared_registry, model):
    with shared_registry.admin() as c:
        for stage in ("Approved", "Archived"):
            resp = c.put(f"/v1/models/{model}/versions/1/stage", json={"stage": stage})
            assert resp.status_code == 200, resp.text
            assert resp.json()["stage"] == stage
        resp = c.put(f"/v1/models/{model}/versions/1/stage", json={"stage": "Production"})
        assert resp.status_code == 422
    with shared_registry.consumer() as c:
        history = c.get(f"/v1/models/{model}/versions/1/stage-history").json()["history"]
    assert [h["stage"] for h in history] == ["Staging", "Approved", "Archived"]
    assert [h["previous"] for h in history] == [None, "Staging", "Approved"]


def test_alias_revision_increments_and_resolves(shared_registry, model):
    with shared_registry.admin() as c:
        assert publish_bytes(c, model, "2", b"v2 bytes").status_code == 201
        revs = []
        for version, ticket in (("1", None), ("2", "CHG-7"), ("1", "CHG-8")):
            resp = c.put(
                f"/v1/models/{model}/aliases/production",
                json={"version": version, "change_ticket": ticket},
            )
            assert resp.status_code == 200, resp.text
            assert resp.json()["version"] == version
            revs.append(resp.json()["revision"])
    assert revs == [1, 2, 3]
    with shared_registry.consumer() as c:
        rec = c.get(f"/v1/models/{model}/resolve/production").json()
        by_version = c.get(f"/v1/models/{model}/resolve/2").json()
        listed = c.get(f"/v1/models/{model}/versions").json()["versions"]
    assert (rec["version"], rec["alias"], rec["alias_revision"], rec["change_ticket"]) == (
        "1",
        "production",
        3,
        "CHG-8",
    )
    assert by_version["version"] == "2" and by_version["alias"] is None
    assert [v["version"] for v in listed] == ["1", "2"]


def test_alias_may_not_shadow_a_version(shared_registry, model):
    with shared_registry.admin() as c:
        resp = c.put(f"/v1/models/{model}/aliases/1", json={"version": "1"})
        assert resp.status_code == 409
        assert c.put(f"/v1/models/{model}/aliases/prod", json={"version": "1"}).status_code == 200
        # ...and a new version may not be named like an alias.
        assert publish_bytes(c, model, "prod", b"shadow").status_code == 409
        resp = c.put(f"/v1/models/{model}/aliases/prod", json={"version": "9"})
        assert resp.status_code == 404


def test_revocation_is_final(shared_registry, model):
    with shared_registry.admin() as c:
        assert c.put(f"/v1/models/{model}/versions/1/stage", json={"stage": "Approved"})
        resp = c.post(f"/v1/models/{model}/versions/1/revoke", json={"reason": "CVE-1"})
        assert resp.status_code == 200
        assert resp.json()["revoked"] is True and resp.json()["revoked_reason"] == "CVE-1"
        release = c.post(f"/v1/models/{model}/versions/1/release", json={})
        assert release.status_code == 409 and _code(release) == "CONFLICT"
        again = c.post(f"/v1/models/{model}/versions/1/revoke", json={"reason": "again"})
        assert again.status_code == 409
        alias = c.put(f"/v1/models/{model}/aliases/production", json={"version": "1"})
        assert alias.status_code == 409
        approve = c.put(f"/v1/models/{model}/versions/1/stage", json={"stage": "Approved"})
        assert approve.status_code == 409
        quarantine = c.post(f"/v1/models/{model}/versions/1/quarantine", json={"reason": "x"})
        assert quarantine.status_code == 409
    with shared_registry.consumer() as c:
        rec = c.get(f"/v1/models/{model}/resolve/1").json()
    assert rec["revoked"] is True and rec["revoked_reason"] == "CVE-1"


def test_revoke_needs_a_reason(shared_registry, model):
    with shared_registry.admin() as c:
        assert c.post(f"/v1/models/{model}/versions/1/revoke", json={}).status_code == 422
        resp = c.post(f"/v1/models/{model}/versions/1/revoke", json={"reason": "   "})
        assert resp.status_code == 422  # the schema says: at least one non-blank character
        for blank in ("\u0085", "\ufeff", "\x1c\u3000"):  # blank to one engine or another
            resp = c.post(f"/v1/models/{model}/versions/1/revoke", json={"reason": blank})
            assert resp.status_code == 422, (blank, resp.text)


def test_alias_change_ticket_must_not_be_blank(shared_registry, model):
    with shared_registry.admin() as c:
        for blank in ("\n", "\u0085", "\ufeff"):
            resp = c.put(
                f"/v1/models/{model}/aliases/production",
                json={"version": "1", "change_ticket": blank},
            )
            assert resp.status_code == 422, (blank, resp.text)


def test_quarantine_then_release(shared_registry, model):
    with shared_registry.admin() as c:
        resp = c.post(f"/v1/models/{model}/versions/1/quarantine", json={"reason": "drift"})
        assert resp.status_code == 200
        assert resp.json()["quarantined"] is True
    with shared_registry.consumer() as c:
        rec = c.get(f"/v1/models/{model}/resolve/1").json()
        assert (rec["quarantined"], rec["quarantine_reason"]) == (True, "drift")
    with shared_registry.admin() as c:
        resp = c.post(f"/v1/models/{model}/versions/1/release")
        assert resp.status_code == 200, resp.text
        assert resp.json()["quarantined"] is False
        assert c.post(f"/v1/models/{model}/versions/1/release").status_code == 409
    with shared_registry.consumer() as c:
        rec = c.get(f"/v1/models/{model}/resolve/1").json()
    assert rec["quarantined"] is False and rec["quarantine_reason"] is None


def test_governance_log_records_every_action(shared_registry, model):
    with shared_registry.admin() as c:
        c.put(f"/v1/models/{model}/versions/1/stage", json={"stage": "Approved"})
        c.put(f"/v1/models/{model}/aliases/production", json={"version": "1"})
        c.post(f"/v1/models/{model}/versions/1/quarantine", json={"reason": "q"})
        c.post(f"/v1/models/{model}/versions/1/release", json={})
        c.post(f"/v1/models/{model}/versions/1/revoke", json={"reason": "r"})
        events = c.get("/v1/governance-log", params={"model": model}).json()["events"]
        page = c.get(
            "/v1/governance-log", params={"model": model, "after": events[1]["id"], "limit": 2}
        ).json()["events"]
    assert [e["action"] for e in events] == [
        "publish",
        "stage",
        "alias",
        "quarantine",
        "release",
        "revoke",
    ]
    for e in events:
        assert e["model"] == model and e["version"] == "1"
        assert e["actor"].startswith("spiffe://trustload.local/ns/governance/sa/admin | ")
        assert e["at"].endswith("Z")
    assert events[2]["detail"]["revision"] == 1
    assert events[5]["detail"] == {"reason": "r"}
    assert [e["id"] for e in page] == [events[2]["id"], events[3]["id"]]


def test_tenant_cross_is_not_found(shared_registry):
    """R9 tenant cross: tenant A cannot see tenant B's model, versions or blobs.
    404 (not 403) so tenant A cannot even learn that the model exists."""
    name = _name()
    data = f"tenant B secret {name}".encode()
    with shared_registry.admin(tenant="B") as c:
        rec = publish_bytes(c, name, "1", data, tenant="B").json()
        c.put(f"/v1/models/{name}/versions/1/stage", json={"stage": "Approved"})
        c.put(f"/v1/models/{name}/aliases/production", json={"version": "1"})
    blob = rec["artifact_digest"].removeprefix("sha256:")
    with shared_registry.consumer(tenant="B") as c:
        assert c.get(f"/v1/models/{name}/resolve/production").status_code == 200
        assert c.get(f"/v1/blobs/sha256/{blob}").content == data
    with shared_registry.consumer(tenant="A") as c:
        for path in (
            f"/v1/models/{name}/resolve/production",
            f"/v1/models/{name}/resolve/1",
            f"/v1/models/{name}/versions",
            f"/v1/models/{name}/versions/1",
            f"/v1/models/{name}/versions/1/stage-history",
            f"/v1/blobs/sha256/{blob}",
        ):
            resp = c.get(path)
            assert resp.status_code == 404, path
            assert _code(resp) == "NOT_FOUND"
        missing = c.get(f"/v1/models/{_name()}/resolve/production")
        assert missing.json()["error"]["message"].startswith("no model")
        assert c.head(f"/v1/blobs/sha256/{blob}").status_code == 404
    with shared_registry.admin(tenant="A") as c:
        # Names belong to a tenant: A's admin sees none of B's model either.
        assert c.get(f"/v1/models/{name}/versions").status_code == 404
    with shared_registry.publisher(tenant="A") as c:
        # Publishing the name B uses creates A's own model, exactly as for a free name.
        resp = publish_bytes(c, name, "1", f"tenant A's own {name}".encode())
        assert resp.status_code == 201, resp.text
        assert resp.json()["card"]["tenant_id"] == "A"
    with shared_registry.consumer(tenant="B") as c:
        rec_b = c.get(f"/v1/models/{name}/resolve/1").json()
        assert rec_b["artifact_digest"] == rec["artifact_digest"]
        assert [v["version"] for v in c.get(f"/v1/models/{name}/versions").json()["versions"]] == [
            "1"
        ]


def test_admin_cannot_publish_for_another_tenant(shared_registry, model):
    """Admins act within their tenant: a card naming another tenant is refused (400),
    whether or not that tenant has the name."""
    with shared_registry.admin(tenant="A") as c:
        for name in (model, _name()):
            resp = publish_bytes(c, name, "2", b"moved", card=default_card("B"))
            assert resp.status_code == 400
            assert "tenant" in resp.json()["error"]["message"]


def test_concurrent_alias_moves_get_distinct_revisions(shared_registry, model):
    """Revisions never repeat, even when admins move an alias at the same moment."""
    from concurrent.futures import ThreadPoolExecutor

    with shared_registry.admin() as c:
        assert publish_bytes(c, model, "2", b"v2 for concurrency").status_code == 201
        assert c.put(f"/v1/models/{model}/aliases/live", json={"version": "1"}).status_code == 200

    def move(i: int) -> int:
        with shared_registry.admin() as c:
            resp = c.put(f"/v1/models/{model}/aliases/live", json={"version": str(1 + i % 2)})
            assert resp.status_code == 200, resp.text
            return resp.json()["revision"]

    with ThreadPoolExecutor(8) as pool:
        revisions = list(pool.map(move, range(16)))
    assert sorted(revisions) == list(range(2, 18))
    with shared_registry.consumer() as c:
        assert c.get(f"/v1/models/{model}/resolve/live").json()["alias_revision"] == 17
