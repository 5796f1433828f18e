"""Inference-input attacks against a real `trustload serve` process serving a verified ONNX
model: hostile shapes and lying binary headers must be answered 400/413, never 5xx, and
never leave a traceback in the server's log."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.attacks.helpers import assert_http_refused
from tests.serve.harness import Serving, serving_one_model

BIG = 2**63 - 1


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    with serving_one_model(tmp_path_factory.mktemp("serving")) as started:
        yield started


def _post_json(serving: Serving, shape: list[Any], data: list[Any]) -> tuple[httpx.Response, str]:
    """Send one hostile JSON request; return the answer and what the server logged meanwhile."""
    body = {"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": data}]}
    mark = len(serving.stderr())
    with serving.http() as http:
        res = http.post("/v2/models/risk/infer", json=body)
    return res, serving.stderr()[mark:]


def _post_binary(
    serving: Serving,
    blob: bytes,
    *,
    size: int,
    shape: tuple[int, ...] = (1, 2),
    header_length: str | None = None,
) -> tuple[httpx.Response, str]:
    """One binary-extension request for input x; ``header_length`` defaults to the truth."""
    params = {"binary_data_size": size}
    tensor = {"name": "x", "shape": list(shape), "datatype": "FP32", "parameters": params}
    head = json.dumps({"inputs": [tensor]}).encode()
    mark = len(serving.stderr())
    with serving.http() as http:
        res = http.post(
            "/v2/models/risk/infer",
            content=head + blob,
            headers={"Inference-Header-Content-Length": header_length or str(len(head))},
        )
    return res, serving.stderr()[mark:]


def test_serving_shape_product_wraps_int64(serving: Serving) -> None:
    """A shape `[2^63-1, 2^63-1]` whose int64 element count (`np.prod`) wraps to 1, with one value.

    Attack: serving / integer overflow in tensor shape
    """
    res, log = _post_json(serving, [BIG, BIG], [1.0])
    assert_http_refused(res, 413, log=log)


def test_serving_dimension_beyond_int64(serving: Serving) -> None:
    """A dimension of 2^64 (beyond int64) with a zero dimension so the product is 0.

    Attack: serving / integer overflow in tensor shape
    """
    res, log = _post_json(serving, [0, 2**64], [])
    assert_http_refused(res, 413, log=log)


def test_serving_shape_product_wraps_to_zero(serving: Serving) -> None:
    """A shape `[2^32, 2^32]` whose int64 element count wraps to 0, sent with no values at all.

    Attack: serving / integer overflow in tensor shape
    """
    res, log = _post_json(serving, [2**32, 2**32], [])
    assert_http_refused(res, 413, log=log)


def test_serving_negative_dimension_pair(serving: Serving) -> None:
    """Two negative dimensions `[-1, -2]` whose product is a plausible positive count of 2.

    Attack: serving / negative tensor shape
    """
    res, log = _post_json(serving, [-1, -2], [1.0, 2.0])
    assert_http_refused(res, 400, log=log)


def test_serving_data_length_differs_from_shape(serving: Serving) -> None:
    """Fewer values than the shape declares (`[4, 2]` with 2 values).

    Attack: serving / tensor length mismatch
    """
    res, log = _post_json(serving, [4, 2], [1.0, 2.0])
    assert_http_refused(res, 400, log=log)


def test_serving_binary_header_longer_than_body(serving: Serving) -> None:
    """`Inference-Header-Content-Length` claims more bytes than the whole body holds.

    Attack: serving / lying binary header
    """
    blob = struct.pack("<2f", 1.0, 2.0)
    res, log = _post_binary(serving, blob, size=8, header_length=str(10**9))
    assert_http_refused(res, 400, log=log)


def test_serving_binary_size_beyond_body(serving: Serving) -> None:
    """`binary_data_size` of 2^62 bytes for an input whose shape is huge too, with 8 real bytes.

    Attack: serving / lying binary header
    """
    res, log = _post_binary(serving, b"\0" * 8, size=2**62, shape=(2**30, 2**30))
    assert_http_refused(res, 413, log=log)


def test_serving_binary_sizes_do_not_sum_to_body(serving: Serving) -> None:
    """`binary_data_size` covers half of the binary data sent; the rest would be read as nothing.

    Attack: serving / lying binary header
    """
    res, log = _post_binary(serving, struct.pack("<4f", 1, 2, 3, 4), size=8)
    assert_http_refused(res, 400, log=log)


def test_serving_binary_negative_header_length(serving: Serving) -> None:
    """A negative `Inference-Header-Content-Length` (a slice from the end, if trusted).

    Attack: serving / lying binary header
    """
    res, log = _post_binary(serving, struct.pack("<2f", 1, 2), size=8, header_length="-8")
    assert_http_refused(res, 400, log=log)


def test_serving_honest_request_control(serving: Serving) -> None:
    """Control: the same server answers an honest request (the refusals above are not blanket)."""
    with serving.http() as http:
        ok = http.post(
            "/v2/models/risk/infer",
            json={"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [2, 1]}]},
        )
    assert ok.status_code == 200, ok.text
