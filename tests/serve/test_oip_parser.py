"""Property tests of the OIP v2 request parser (`trustload.serve.oip`), the pure module the
HTTP app delegates to: whatever the bytes, it returns a bounded request or raises OipError
with 400/413 — never another exception, never an allocation beyond the limit."""

from __future__ import annotations

import json
import struct
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.oip_strategies import near_valid, requests
from trustload.serve.loader import TensorSpec
from trustload.serve.oip import (
    Limits,
    OipError,
    checked_shape,
    encode_infer_response,
    parse_infer_request,
)

SPECS = {"x": TensorSpec("x", "FP32", (-1, 2)), "flag": TensorSpec("flag", "BOOL", (-1,))}
ONE_INPUT = {"x": SPECS["x"]}
LIMITS = Limits(max_elements=4096)


def _parse(
    body: bytes, specs: dict[str, TensorSpec] = SPECS, header_length: str | None = None
) -> Any:
    """Run the parser under tracemalloc; return (result or OipError, peak bytes allocated)."""
    tracemalloc.start()
    try:
        try:
            result: Any = parse_infer_request(body, specs, LIMITS, header_length=header_length)
        except OipError as exc:
            result = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def _check_bounded(body: bytes, result: Any, peak: int) -> None:
    # Python objects for the parsed JSON plus one array: a small multiple of the body.
    assert peak <= 64 * len(body) + 256 * 1024, (peak, len(body))
    if isinstance(result, OipError):
        assert result.status in (400, 413), result.status
        assert result.message
        return
    for name, arr in result.inputs.items():
        spec = SPECS[name]
        assert arr.dtype == np.dtype({"FP32": np.float32, "BOOL": np.bool_}[spec.datatype])
        assert arr.size <= LIMITS.max_elements
        assert arr.ndim <= LIMITS.max_rank


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(requests, near_valid()))
def test_structured_hostile_requests_are_bounded(doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    result, peak = _parse(body)
    _check_bounded(body, result, peak)
    if not isinstance(result, OipError):
        # Accepted: every shape was valid in Python integers and matched the data given.
        for tensor in doc["inputs"]:
            shape, count = checked_shape(tensor["name"], tensor["shape"], LIMITS)
            assert result.inputs[tensor["name"]].shape == shape
            assert result.inputs[tensor["name"]].size == count


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape(body: bytes) -> None:
    result, peak = _parse(body)
    assert isinstance(result, OipError)
    _check_bounded(body, result, peak)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=2**64), min_size=1, max_size=8),
    st.integers(min_value=1, max_value=10**6),
)
def test_shape_check_matches_exact_integer_arithmetic(shape: list[int], limit: int) -> None:
    limits = Limits(max_elements=limit)
    exact = 1
    for d in shape:
        exact *= d
    try:
        dims, count = checked_shape("x", shape, limits)
    except OipError as exc:
        assert exc.status == 413
        assert exact > limit or max(shape) > limit
    else:
        assert count == exact <= limit and dims == tuple(shape)


@pytest.mark.parametrize(
    "shape,data,status",
    [
        ([2**63 - 1, 2**63 - 1], [1.0], 413),  # int64 product wraps to 1
        ([2**32, 2**32], [], 413),  # wraps to 0
        ([0, 2**64], [], 413),  # product 0, dimension beyond int64
        ([-1, -2], [1.0, 2.0], 400),  # negative dims with a positive product
        ([4, 2], [1.0, 2.0], 400),  # fewer values than declared
        ([1, 2], [1.0, 2.0, 3.0], 400),  # more values than declared
        ([1, 2], [[1.0], [2.0, 3.0]], 400),  # ragged
        ([1, 2], ["1.5", "2"], 400),  # strings are not numbers
        ([1, 2], [True, False], 400),  # booleans are not FP32
        ([1, 2], [2**70, 1], 400),  # beyond any numpy integer
        ([1, 2.0], [1.0, 2.0], 400),  # a float dimension
        ([1, True], [1.0], 400),  # a boolean dimension
        ([1] * 9, [1.0], 400),  # rank beyond the limit
        ([2049, 2], [0.0] * 4098, 413),  # more elements than the limit
    ],
)
def test_hostile_shapes_and_data(shape: list[Any], data: list[Any], status: int) -> None:
    body = json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": data}]})
    with pytest.raises(OipError) as err:
        parse_infer_request(body.encode(), ONE_INPUT, LIMITS)
    assert err.value.status == status, err.value.message


def test_honest_request_parses_nested_and_flat() -> None:
    for data in ([1, 2.5, -3, 4], [[1, 2.5], [-3, 4]]):
        body = json.dumps(
            {
                "id": "r",
                "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": data}],
            }
        )
        req = parse_infer_request(body.encode(), ONE_INPUT, LIMITS)
        assert req.id == "r" and req.outputs is None
        assert req.inputs["x"].dtype == np.float32
        assert req.inputs["x"].tolist() == [[1.0, 2.5], [-3.0, 4.0]]


# ------------------------------------------------------------ binary tensor data extension


def _binary_body(
    inputs: list[dict[str, Any]], blobs: list[bytes], **extra: Any
) -> tuple[bytes, str]:
    head = json.dumps({"inputs": inputs, **extra}).encode()
    return head + b"".join(blobs), str(len(head))


def _x(size: Any, shape: list[Any] | None = None) -> dict[str, Any]:
    return {
        "name": "x",
        "shape": shape or [1, 2],
        "datatype": "FP32",
        "parameters": {"binary_data_size": size},
    }


TWO_FLOATS = np.asarray([1.5, -2.0], dtype="<f4").tobytes()


@pytest.mark.parametrize(
    "header_length",
    ["abc", "-1", "1.5", "", " ", "0x10", "99999999999999999999", "1e3", "+5", "10000"],
)
def test_lying_header_length_is_400(header_length: str) -> None:
    body, _ = _binary_body([_x(8)], [TWO_FLOATS])
    with pytest.raises(OipError) as err:
        parse_infer_request(body, ONE_INPUT, LIMITS, header_length=header_length)
    assert err.value.status == 400, err.value.message


@pytest.mark.parametrize(
    "tensor,blobs",
    [
        (_x(-8), [TWO_FLOATS]),  # negative size
        (_x("8"), [TWO_FLOATS]),  # a string
        (_x(8.0), [TWO_FLOATS]),  # a float
        (_x(True), [TWO_FLOATS]),  # a boolean
        (_x(4), [TWO_FLOATS]),  # sizes do not sum to the body (4 bytes left over)
        (_x(16), [TWO_FLOATS]),  # more than the body holds
        (_x(2**62, [2**30, 2**30]), [TWO_FLOATS]),  # huge declared size and shape
        (_x(12), [TWO_FLOATS + b"\0" * 4]),  # 12 bytes for a [1, 2] FP32 tensor
        (_x(6), [TWO_FLOATS[:6]]),  # not a whole number of FP32 elements
        ({**_x(8), "data": [1.0, 2.0]}, [TWO_FLOATS]),  # both data and binary
        (
            {**_x(8), "parameters": {"shared_memory_region": "r", "binary_data_size": 8}},
            [TWO_FLOATS],
        ),
    ],
)
def test_lying_binary_sizes(tensor: dict[str, Any], blobs: list[bytes]) -> None:
    body, length = _binary_body([tensor], blobs)
    with pytest.raises(OipError) as err:
        parse_infer_request(body, ONE_INPUT, LIMITS, header_length=length)
    assert err.value.status in (400, 413), err.value.message


def test_binary_data_without_the_header_is_refused() -> None:
    body, _ = _binary_body([_x(8)], [TWO_FLOATS])
    with pytest.raises(OipError) as err:  # the JSON parser sees trailing bytes
        parse_infer_request(body, ONE_INPUT, LIMITS)
    assert err.value.status == 400
    head, _ = _binary_body([_x(8)], [])
    with pytest.raises(OipError) as err:  # a binary size but no binary data at all
        parse_infer_request(head, ONE_INPUT, LIMITS)
    assert err.value.status == 400


def test_bool_and_bytes_binary_bounds() -> None:
    flag = {"flag": TensorSpec("flag", "BOOL", (-1,))}
    t = {"name": "flag", "shape": [3], "datatype": "BOOL", "parameters": {"binary_data_size": 3}}
    body, length = _binary_body([t], [b"\x01\x00\x01"])
    req = parse_infer_request(body, flag, LIMITS, header_length=length)
    assert req.inputs["flag"].tolist() == [True, False, True]
    body, length = _binary_body([t], [b"\x01\x02\x01"])
    with pytest.raises(OipError):
        parse_infer_request(body, flag, LIMITS, header_length=length)
    text = {"s": TensorSpec("s", "BYTES", (-1,))}
    good = struct.pack("<I", 2) + b"hi" + struct.pack("<I", 0)
    for blob, ok in [
        (good, True),
        (struct.pack("<I", 2**32 - 1) + b"hi", False),  # element length past the data
        (good + struct.pack("<I", 1) + b"x", False),  # one element too many
        (struct.pack("<I", 2) + b"\xff\xfe", False),  # not UTF-8
        (good[:-2], False),  # a truncated length prefix
    ]:
        s = {"name": "s", "shape": [2], "datatype": "BYTES"}
        s["parameters"] = {"binary_data_size": len(blob)}
        body, length = _binary_body([s], [blob])
        if ok:
            assert parse_infer_request(body, text, LIMITS, header_length=length).inputs[
                "s"
            ].tolist() == ["hi", ""]
        else:
            with pytest.raises(OipError):
                parse_infer_request(body, text, LIMITS, header_length=length)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=40),
    st.booleans(),
    st.binary(max_size=64),
    st.one_of(st.none(), st.integers(min_value=-5, max_value=400), st.text(max_size=4)),
)
def test_binary_round_trip_or_refusal(
    rows: int, honest: bool, junk: bytes, header: int | str | None
) -> None:
    """Honest binary requests decode to the exact floats; any tampering is only OipError."""
    x = np.random.default_rng(rows).standard_normal((rows, 2)).astype(np.float32)
    flag = np.asarray([i % 2 == 0 for i in range(rows)])
    inputs = [_x(x.nbytes, [rows, 2]), {"name": "flag", "shape": [rows], "datatype": "BOOL"}]
    inputs[1]["data"] = flag.tolist()
    body, length = _binary_body(inputs, [x.tobytes()], parameters={"binary_data_output": True})
    if honest:
        req = parse_infer_request(body, SPECS, LIMITS, header_length=length)
        np.testing.assert_array_equal(req.inputs["x"], x)
        assert req.binary_output is True
        return
    body = body + junk if junk else body[: len(body) // 2]
    result, peak = _parse(body, header_length=None if header is None else str(header))
    assert isinstance(result, OipError) or header is not None
    _check_bounded(body, result, peak)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=3),
    st.sampled_from(["<f4", "<f8", "<i8", "<i1", "|b1"]),
    st.booleans(),
)
def test_responses_decode_with_tritonclient(shape: list[int], dtype: str, binary: bool) -> None:
    """The encoder's output read back by tritonclient's own response parser."""
    http = pytest.importorskip("tritonclient.http")
    arr = (np.arange(int(np.prod(shape))) % 3).astype(dtype).reshape(shape)
    text = np.asarray(["a", "ß", ""] * 2, dtype=object)
    body, length = encode_infer_response(
        {"model_name": "m", "model_version": "1"}, [("y", arr, binary), ("t", text, binary)]
    )
    result = http.InferResult.from_response_body(body, header_length=length)
    np.testing.assert_array_equal(result.as_numpy("y"), arr)
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("t")] == list(text)
    assert (length is not None) is binary


def test_deep_nesting_and_repeated_outputs_are_400() -> None:
    deep = "[" * 5000 + "1" + "]" * 5000
    head = '{"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": '
    body = head + deep + "}]}"
    with pytest.raises(OipError) as err:
        parse_infer_request(body.encode(), ONE_INPUT, LIMITS)
    assert err.value.status == 400
    doc = {
        "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}],
        "outputs": [{"name": "score"}] * 2,  # each copy would cost a full encoding
    }
    with pytest.raises(OipError) as err:
        parse_infer_request(json.dumps(doc).encode(), ONE_INPUT, LIMITS)
    assert err.value.status == 400 and "twice" in err.value.message
