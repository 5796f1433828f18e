"""OCI versions in the Registry (``artifact_uri``): what a publish may say about an
artifact whose bytes the Registry never holds, and how the record reads back."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.registry import POLICY_DIGEST, default_card

pytestmark = pytest.mark.postgres_ok

MANIFEST = "sha256:" + "ab" * 32
LAYER = "cd" * 32


def _body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": "1",
        "artifact_digest": MANIFEST,
        "artifact_size": 10,
        "kind": "directory",
        "format": "onnx",
        "files": [{"path": "model.onnx", "sha256": LAYER, "size": 10}],
        "policy_digest": POLICY_DIGEST,
        "git_sha": "0" * 40,
        "container_digest": "sha256:" + "cd" * 32,
        "dataset_snapshot": "ds-2026-01",
        "artifact_uri": f"oci://127.0.0.1:5000/models/risk@{MANIFEST}",
        "card": default_card(),
    }
    body.update(over)
    return body


def _publish(shared_registry: Any, **over: Any) -> Any:
    with shared_registry.publisher() as c:
        return c.post(f"/v1/models/m-{uuid.uuid4().hex[:10]}/versions", json=_body(**over))


def test_oci_version_is_recorded_without_any_blob(shared_registry: Any) -> None:
    resp = _publish(shared_registry)
    assert resp.status_code == 201, resp.text
    rec = resp.json()
    assert rec["artifact_uri"] == f"oci://127.0.0.1:5000/models/risk@{MANIFEST}"
    assert rec["artifact_digest"] == MANIFEST and rec["kind"] == "directory"
    assert rec["signature_digest"] is None and rec["attestation_digest"] is None


@pytest.mark.parametrize(
    ("over", "status", "why"),
    [
        ({"artifact_uri": f"oci://127.0.0.1:5000/models/risk@sha256:{'ef' * 32}"}, 400, "pinned"),
        ({"kind": "file"}, 400, "directory"),
        ({"signature_digest": "sha256:" + "11" * 32}, 400, "live in its OCI registry"),
        ({"artifact_size": 11}, 400, "sum of the files"),
        ({"files": [{"path": "../x", "sha256": LAYER, "size": 10}]}, 400, "valid model"),
        (
            {
                "files": [
                    {"path": "a", "sha256": LAYER, "size": 5},
                    {"path": "a", "sha256": LAYER, "size": 5},
                ]
            },
            400,
            "valid model",
        ),
        ({"artifact_uri": f"oci://127.0.0.1:5000/models/risk:v1@{MANIFEST}"}, 422, ""),
        ({"artifact_uri": f"https://127.0.0.1:5000/models/risk@{MANIFEST}"}, 422, ""),
        ({"artifact_uri": "oci://127.0.0.1:5000/Models/Risk@" + MANIFEST}, 422, ""),
    ],
)
def test_oci_publish_refusals(
    shared_registry: Any, over: dict[str, Any], status: int, why: str
) -> None:
    resp = _publish(shared_registry, **over)
    assert resp.status_code == status, resp.text
    assert why in resp.json()["error"]["message"]
