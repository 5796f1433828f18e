"""cosign's formats parsed strictly: every hostile shape is a FormatError with the caller's
code, never another exception."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from trustload.decision import ReasonCode
from trustload.errors import FormatError
from trustload.formats.cosign import (
    b64,
    looks_like_blob_bundle,
    parse_blob_bundle,
    parse_hashedrekord,
    parse_rekor_set,
    parse_signature_manifest,
    parse_simple_signing,
)

CODE = ReasonCode.IMAGE_SIGNATURE_INVALID
DIGEST = "sha256:" + "1" * 64


def _payload(**critical: Any) -> bytes:
    base: dict[str, Any] = {
        "identity": {"docker-reference": "r/x"},
        "image": {"docker-manifest-digest": DIGEST},
        "type": "cosign container image signature",
    }
    base.update(critical)
    return json.dumps({"critical": base, "optional": None}).encode()


def test_simple_signing_ok() -> None:
    parsed = parse_simple_signing(_payload(), code=CODE)
    assert parsed.manifest_digest == DIGEST
    assert parsed.docker_reference == "r/x"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"[]",
        b"\xff\xfe",
        _payload(type="atomic container signature"),
        _payload(image={"docker-manifest-digest": "sha256:XYZ"}),
        _payload(image={"docker-manifest-digest": "sha512:" + "1" * 128}),
        _payload(image=[]),
        _payload().replace(b'"type"', b'"type": "x", "type"', 1),  # duplicate key
        b'{"critical": ' * 100 + b"{}" + b"}" * 100,
        b" " * (65 * 1024),
    ],
)
def test_simple_signing_hostile(payload: bytes) -> None:
    with pytest.raises(FormatError) as err:
        parse_simple_signing(payload, code=CODE)
    assert err.value.code == CODE


def _manifest(layers: Any, **extra: Any) -> bytes:
    return json.dumps({"schemaVersion": 2, "layers": layers, **extra}).encode()


def _layer(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "digest": DIGEST,
        "size": 10,
        "annotations": {"dev.cosignproject.cosign/signature": "AAAA"},
    }
    d.update(over)
    return d


def test_signature_manifest_ok() -> None:
    m = parse_signature_manifest(_manifest([_layer()], subject=_layer()), code=CODE)
    assert m.layers[0].signature_b64 == "AAAA"
    assert m.subject == DIGEST


@pytest.mark.parametrize(
    "raw",
    [
        _manifest([_layer()] * 1001),
        _manifest("layers"),
        _manifest([_layer(size=-1)]),
        _manifest([_layer(size=True)]),
        _manifest([_layer(digest="sha256:../../etc/passwd")]),
        _manifest([_layer(annotations={"k": 1})]),
        _manifest([_layer(annotations={f"k{i}": "v" for i in range(65)})]),
        _manifest([_layer(mediaType=None)]),
        json.dumps({"schemaVersion": 1, "layers": []}).encode(),
        b"{" * 5000,
    ],
    ids=[
        "too-many-layers",
        "layers-not-a-list",
        "negative-size",
        "bool-size",
        "path-in-digest",
        "annotation-not-string",
        "too-many-annotations",
        "no-media-type",
        "schema-1",
        "deep-nesting",
    ],
)
def test_signature_manifest_hostile(raw: bytes) -> None:
    with pytest.raises(FormatError) as err:
        parse_signature_manifest(raw, code=CODE)
    assert err.value.code == CODE


def _set(**payload: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "body": base64.b64encode(b"{}").decode(),
        "integratedTime": 1,
        "logIndex": 2,
        "logID": "a" * 64,
    }
    p.update(payload)
    return {"SignedEntryTimestamp": base64.b64encode(b"sig").decode(), "Payload": p}


def test_rekor_set_canonical_form() -> None:
    rset = parse_rekor_set(json.dumps(_set()), code=CODE)
    assert rset.payload.canonical() == (
        b'{"body":"e30=","integratedTime":1,"logID":"' + b"a" * 64 + b'","logIndex":2}'
    )


@pytest.mark.parametrize(
    "doc",
    [
        _set(integratedTime=True),
        _set(integratedTime=-1),
        _set(integratedTime="1"),
        _set(logID="A" * 64),
        _set(body="not base64 !"),
        _set(extra="x"),
        {"Payload": _set()["Payload"]},
        {"SignedEntryTimestamp": "", "Payload": _set()["Payload"]},
        [],
    ],
)
def test_rekor_set_hostile(doc: Any) -> None:
    with pytest.raises(FormatError):
        parse_rekor_set(doc, code=CODE)


def test_rekor_set_garbage_text() -> None:
    with pytest.raises(FormatError):
        parse_rekor_set("this is not json", code=CODE)


def _body(**spec: Any) -> str:
    doc = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": "b" * 64}},
            "signature": {
                "content": base64.b64encode(b"sig").decode(),
                "publicKey": {"content": base64.b64encode(b"PEM").decode()},
            },
        },
    }
    doc.update(spec)
    return base64.b64encode(json.dumps(doc).encode()).decode()


def test_hashedrekord_ok() -> None:
    entry = parse_hashedrekord(_body(), code=CODE)
    assert entry.sha256_hex == "b" * 64
    assert entry.signature == b"sig"


@pytest.mark.parametrize(
    "body",
    [
        _body(kind="rekord"),
        _body(apiVersion="0.0.2"),
        _body(spec={"data": {"hash": {"algorithm": "sha1", "value": "b" * 40}}}),
        _body(spec=[]),
        base64.b64encode(b"\x00\x01").decode(),
    ],
)
def test_hashedrekord_hostile(body: str) -> None:
    with pytest.raises(FormatError):
        parse_hashedrekord(body, code=CODE)


def test_blob_bundle_shapes() -> None:
    ok = json.dumps({"base64Signature": base64.b64encode(b"s").decode(), "cert": None}).encode()
    assert looks_like_blob_bundle(ok)
    assert parse_blob_bundle(ok, code=ReasonCode.SIGNATURE_INVALID).rekor is None
    assert not looks_like_blob_bundle(b'{"mediaType": "application/vnd.dev.sigstore.bundle"}')
    for bad in (
        json.dumps({"base64Signature": "", "x": 1}).encode(),
        json.dumps({"base64Signature": 5}).encode(),
        json.dumps({"base64Signature": "AAAA", "rekorBundle": {"Payload": {}}}).encode(),
    ):
        with pytest.raises(FormatError) as err:
            parse_blob_bundle(bad, code=ReasonCode.SIGNATURE_INVALID)
        assert err.value.code == ReasonCode.SIGNATURE_INVALID


def test_base64_wrapped_at_76_columns_is_accepted_like_go() -> None:
    data = bytes(range(200))
    text = base64.encodebytes(data).decode()  # wrapped with newlines
    assert "\n" in text.strip()
    assert b64(text, code=CODE, what="x", max_len=1024) == data
    with pytest.raises(FormatError):
        b64("AA AA", code=CODE, what="x", max_len=1024)
