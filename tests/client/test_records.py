"""Strict parsing of Registry answers: a malformed record is REGISTRY_UNAVAILABLE
("answered garbage"), never half-trusted and never a traceback."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustload.client.api import parse_record
from trustload.decision import ReasonCode
from trustload.errors import RegistryError

HEX = hashlib.sha256(b"model").hexdigest()


def good() -> dict[str, Any]:
    return {
        "name": "risk",
        "version": "3",
        "stage": "Approved",
        "artifact_digest": f"sha256:{HEX}",
        "artifact_size": 5,
        "kind": "file",
        "format": "onnx",
        "policy_digest": "sha256:" + "ab" * 32,
        "git_sha": "1" * 40,
        "container_digest": "sha256:" + "cd" * 32,
        "dataset_snapshot": "ds",
        "revoked": False,
        "revoked_reason": None,
        "quarantined": False,
        "quarantine_reason": None,
        "card": {
            "tenant_id": "A",
            "domain": "credit",
            "purpose": {"allowed": ["credit_scoring"]},
            "revalidate_by": "2027-06-30T00:00:00Z",
            "format": "onnx",
            "owner": "team-x",
        },
        "signature_digest": "sha256:" + "11" * 32,
        "attestation_digest": "sha256:" + "22" * 32,
        "files": [{"path": "model.onnx", "sha256": HEX, "size": 5}],
        "alias": "production",
        "alias_revision": 4,
        "change_ticket": None,
        "publisher": "spiffe://x",
        "created_at": "2026-11-28T10:00:00Z",
        "served_at": "2026-11-28T10:00:01Z",
    }


def test_good_record_parses() -> None:
    rec = parse_record(good())
    assert rec.version == "3" and rec.alias_revision == 4 and rec.files[0].size == 5
    assert rec.card.purposes_allowed == ("credit_scoring",) and rec.card.extra == {
        "owner": "team-x"
    }
    assert rec.card.revalidate_by is not None and rec.card.revalidate_by.year == 2027


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        doc = doc[int(k)] if isinstance(doc, list) else doc[k]
    if value is KeyError:
        del doc[keys[-1]]
    else:
        doc[keys[-1]] = value


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("stage", "Production"),
        ("stage", None),
        ("kind", "tarball"),
        ("artifact_digest", "sha256:XYZ"),
        ("artifact_digest", "md5:" + "0" * 32),
        ("artifact_size", -1),
        ("artifact_size", True),
        ("artifact_size", "5"),
        ("revoked", "false"),
        ("quarantined", None),
        ("policy_digest", KeyError),
        ("git_sha", 7),
        ("card", "A"),
        ("card.tenant_id", None),
        ("card.purpose", ["credit_scoring"]),
        ("card.purpose.allowed", "credit_scoring"),
        ("card.revalidate_by", "next year"),
        ("card.revalidate_by", "2027-06-30T00:00:00"),
        ("files", []),
        ("files.0.path", "../etc/passwd"),
        ("files.0.path", "/abs"),
        ("files.0.sha256", HEX.upper()),
        ("files.0.sha256", "sha256:" + HEX),
        ("files.0.size", 6),
        ("signature_digest", "sha256:short"),
        ("alias_revision", -3),
        ("created_at", 12),
        ("name", "x" * 300),
    ],
)
def test_malformed_records_are_registry_unavailable(path: str, value: Any) -> None:
    doc = copy.deepcopy(good())
    _set(doc, path, value)
    with pytest.raises(RegistryError) as err:
        parse_record(doc)
    assert err.value.code is ReasonCode.REGISTRY_UNAVAILABLE


def test_directory_record_needs_files_and_no_duplicates() -> None:
    doc = good()
    doc["kind"] = "directory"
    doc["files"] = [
        {"path": "a", "sha256": HEX, "size": 1},
        {"path": "b", "sha256": HEX, "size": 2},
    ]
    assert len(parse_record(doc).files) == 2
    doc["files"].append({"path": "a", "sha256": HEX, "size": 1})
    with pytest.raises(RegistryError):
        parse_record(doc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_never_escapes_as_another_error(doc: Any) -> None:
    try:
        parse_record(doc)
    except RegistryError as exc:
        assert exc.code is ReasonCode.REGISTRY_UNAVAILABLE


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(good())), json_values)
def test_any_field_replaced_by_anything_parses_or_is_refused(key: str, value: Any) -> None:
    doc = good()
    doc[key] = value
    try:
        rec = parse_record(doc)
    except RegistryError as exc:
        assert exc.code is ReasonCode.REGISTRY_UNAVAILABLE
    else:
        assert rec.artifact_digest.startswith("sha256:")


@pytest.mark.parametrize(
    ("alias", "name", "ref", "alias_allowed", "accepted"),
    [
        (None, "risk", "3", True, True),  # the requested version
        ("production", "risk", "production", True, True),  # the alias asked for
        ("production", "risk", "3", False, True),  # by version, whatever alias it carries
        (None, "fraud", "3", True, False),  # another model's record
        (None, "risk", "2", True, False),  # another version's record
        ("canary", "risk", "production", True, False),  # another alias's record
        ("production", "risk", "production", False, False),  # get_version never via alias
    ],
)
def test_a_record_must_answer_the_question_asked(
    alias: str | None, name: str, ref: str, alias_allowed: bool, accepted: bool
) -> None:
    from trustload.client.api import answers

    record = parse_record({**good(), "alias": alias, "alias_revision": 1 if alias else None})
    if accepted:
        assert answers(record, name, ref, alias_allowed=alias_allowed) is record
    else:
        with pytest.raises(RegistryError) as err:
            answers(record, name, ref, alias_allowed=alias_allowed)
        assert err.value.code is ReasonCode.REGISTRY_UNAVAILABLE
