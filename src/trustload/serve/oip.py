"""Open Inference Protocol v2 request parsing and response encoding, with no HTTP in it.

Everything a client sends is hostile until bounded. Shapes are checked in Python
integers (arbitrary precision) against the data actually present and a maximum
element count *before* numpy sees them: ``np.prod`` computes in int64, so the shape
``[2^63-1, 2^63-1]`` wraps to 1 and would pass a count check it should fail. Every
declared size is compared with the bytes received before anything is allocated, so
the memory a request can cost is bounded by its body, and every refusal is an
:class:`OipError` carrying the HTTP status (400 malformed, 413 beyond a limit).

Kept apart from the ASGI app so it can be property-tested directly.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trustload.identifiers import parse_decimal
from trustload.serve.loader import TensorSpec, numpy_dtype, oip_datatype

Array = npt.NDArray[Any]
MAX_TENSOR_RANK = 8
MAX_TENSORS = 64

HEADER_LENGTH = "inference-header-content-length"
_LENGTH_PREFIX = struct.Struct("<I")

# numpy dtype kinds a JSON number list may arrive as, per target kind.
_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}


class OipError(Exception):
    """A request refused before inference; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    """``max_elements`` bounds every tensor; any one dimension above it is refused too."""

    max_elements: int
    max_rank: int = MAX_TENSOR_RANK


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool | None  # None: not said, the request-level default applies


@dataclass(frozen=True)
class InferenceRequest:
    id: str | None
    inputs: dict[str, Array]
    outputs: tuple[RequestedOutput, ...] | None  # None: every output of the model
    binary_output: bool


class _Tensor(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(max_length=256)
    shape: list[Any] = Field(max_length=MAX_TENSOR_RANK)
    datatype: str = Field(max_length=16)
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class _Output(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(max_length=256)
    parameters: dict[str, Any] | None = None


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = Field(default=None, max_length=256)
    inputs: list[_Tensor] = Field(min_length=1, max_length=MAX_TENSORS)
    outputs: list[_Output] | None = Field(default=None, max_length=MAX_TENSORS)
    parameters: dict[str, Any] | None = None


def checked_shape(name: str, shape: Sequence[Any], limits: Limits) -> tuple[tuple[int, ...], int]:
    """The shape as a tuple of ints and its element count, computed without overflow.

    A dimension above ``max_elements`` is refused even when another one is 0: numpy
    cannot represent it, and no honest tensor needs it.
    """
    if len(shape) > limits.max_rank:
        raise OipError(400, f"input {name!r} has rank {len(shape)} > {limits.max_rank}")
    dims: list[int] = []
    for d in shape:
        if type(d) is not int:  # bool is an int subclass; 2.0 and "2" are not dimensions
            raise OipError(400, f"input {name!r}: every dimension must be an integer")
        if d < 0:
            raise OipError(400, f"input {name!r} has a negative dimension")
        if d > limits.max_elements:
            raise OipError(413, f"input {name!r}: dimension {d} exceeds the element limit")
        dims.append(d)
    count = 1
    for d in dims:  # each factor <= max_elements and rank <= 8: a bounded Python int
        count *= d
    if count > limits.max_elements:
        raise OipError(413, f"input {name!r} has {count} elements, more than {limits.max_elements}")
    return tuple(dims), count


def _json_array(
    name: str, data: list[Any], dtype: Any, shape: tuple[int, ...], count: int
) -> Array:
    target = np.dtype(dtype)
    try:
        raw = np.asarray(data)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise OipError(400, f"input {name!r}: data is not a regular array of numbers") from exc
    if raw.size != count:
        raise OipError(400, f"input {name!r}: {raw.size} values for shape {list(shape)}")
    if raw.size and raw.dtype.kind not in _ACCEPTED_KINDS[target.kind]:
        raise OipError(400, f"input {name!r}: values are not of type {target.name}")
    if target.kind in "iu" and raw.size:
        info = np.iinfo(target)
        lo, hi = int(raw.min()), int(raw.max())
        if lo < info.min or hi > info.max:
            raise OipError(400, f"input {name!r}: value out of range for {target.name}")
    with np.errstate(over="ignore"):  # FP32/FP16 overflow to inf, as a binary client's would
        return raw.astype(target, copy=False).reshape(shape)


def _bytes_json(name: str, data: list[Any], shape: tuple[int, ...], count: int) -> Array:
    if len(data) != count or not all(isinstance(v, str) for v in data):
        raise OipError(400, f"input {name!r}: BYTES data must be {count} strings")
    return np.array(data, dtype=object).reshape(shape)


def _bytes_binary(name: str, chunk: memoryview, shape: tuple[int, ...], count: int) -> Array:
    """BYTES elements: each a 4-byte little-endian length, then that many UTF-8 bytes."""
    values: list[str] = []
    pos = 0
    while pos < len(chunk):
        if len(values) == count or pos + 4 > len(chunk):
            raise OipError(400, f"input {name!r}: BYTES data does not match its shape")
        (size,) = _LENGTH_PREFIX.unpack_from(chunk, pos)
        pos += 4
        if size > len(chunk) - pos:
            raise OipError(400, f"input {name!r}: a BYTES element runs past its data")
        try:
            values.append(bytes(chunk[pos : pos + size]).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise OipError(400, f"input {name!r}: BYTES element is not UTF-8") from exc
        pos += size
    if len(values) != count:
        raise OipError(400, f"input {name!r}: {len(values)} BYTES elements for {count}")
    return np.array(values, dtype=object).reshape(shape)


def _fixed_binary(
    name: str, chunk: memoryview, dtype: Any, shape: tuple[int, ...], count: int
) -> Array:
    target = np.dtype(dtype)
    if len(chunk) != count * target.itemsize:
        raise OipError(
            400,
            f"input {name!r}: binary_data_size {len(chunk)} is not "
            f"{count} x {target.itemsize} bytes",
        )
    if target.kind == "b" and bytes(chunk).translate(None, b"\x00\x01"):
        raise OipError(400, f"input {name!r}: BOOL bytes must be 0 or 1")
    arr = np.frombuffer(chunk, dtype=target.newbyteorder("<")).reshape(shape)
    return arr.astype(target, copy=False)


def _spec_for(tensor: _Tensor, specs: Mapping[str, TensorSpec]) -> TensorSpec:
    spec = specs.get(tensor.name)
    if spec is None:
        raise OipError(400, f"unknown input {tensor.name!r}")
    if tensor.datatype != spec.datatype:
        raise OipError(400, f"input {tensor.name!r} must be {spec.datatype}, got {tensor.datatype}")
    return spec


def _validated(head: bytes) -> _Request:
    try:
        return _Request.model_validate_json(head)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise OipError(
            400, f"bad inference request: {where}: {first['msg']} ({exc.error_count()} problem(s))"
        ) from exc


def split_body(body: bytes, header_length: str | None) -> tuple[memoryview, memoryview]:
    """(JSON header, binary tensor data) of a body, per ``Inference-Header-Content-Length``."""
    view = memoryview(body)
    if header_length is None:
        return view, view[len(body) :]
    text = header_length.strip()
    length = parse_decimal(text)
    if length is None:
        raise OipError(400, "Inference-Header-Content-Length must be a non-negative integer")
    if length > len(body):
        raise OipError(400, "Inference-Header-Content-Length is larger than the body")
    return view[:length], view[length:]


def _flag(params: Mapping[str, Any] | None, key: str, where: str) -> bool | None:
    value = (params or {}).get(key)
    if value is not None and type(value) is not bool:
        raise OipError(400, f"{where}: parameter {key!r} must be a boolean")
    return value


def _binary_size(tensor: _Tensor) -> int | None:
    params = tensor.parameters or {}
    if any(k.startswith("shared_memory") for k in params):
        raise OipError(400, "the shared-memory extensions are not supported")
    size = params.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise OipError(400, f"input {tensor.name!r}: binary_data_size must be an integer >= 0")
    if tensor.data is not None:
        raise OipError(400, f"input {tensor.name!r} has both data and binary_data_size")
    return size


def _tensor(
    tensor: _Tensor, spec: TensorSpec, binary: memoryview, offset: int, limits: Limits
) -> tuple[Array, int]:
    """One input as an array, and the offset of the next input's binary data."""
    shape, count = checked_shape(tensor.name, tensor.shape, limits)
    size = _binary_size(tensor)
    if size is not None:
        if size > len(binary) - offset:
            raise OipError(
                400, f"input {tensor.name!r}: binary_data_size exceeds the binary data sent"
            )
        chunk = binary[offset : offset + size]
        if spec.datatype == "BYTES":
            return _bytes_binary(tensor.name, chunk, shape, count), offset + size
        return _fixed_binary(
            tensor.name, chunk, numpy_dtype(spec.datatype), shape, count
        ), offset + size
    if tensor.data is None:
        raise OipError(400, f"input {tensor.name!r} has no data")
    if spec.datatype == "BYTES":
        return _bytes_json(tensor.name, tensor.data, shape, count), offset
    return _json_array(tensor.name, tensor.data, numpy_dtype(spec.datatype), shape, count), offset


def parse_infer_request(
    body: bytes,
    specs: Mapping[str, TensorSpec],
    limits: Limits,
    *,
    header_length: str | None = None,
) -> InferenceRequest:
    """Parse and bound one inference request (JSON or binary tensor extension)."""
    head, binary = split_body(body, header_length)
    request = _validated(bytes(head))
    inputs: dict[str, Array] = {}
    offset = 0
    for tensor in request.inputs:
        spec = _spec_for(tensor, specs)
        if tensor.name in inputs:
            raise OipError(400, f"input {tensor.name!r} given twice")
        if spec.datatype != "BYTES":
            try:
                numpy_dtype(spec.datatype)
            except ValueError as exc:
                raise OipError(400, f"input {tensor.name!r}: {exc}") from exc
        inputs[tensor.name], offset = _tensor(tensor, spec, binary, offset, limits)
    if offset != len(binary):
        raise OipError(
            400, f"binary data sizes do not add up: {len(binary) - offset} byte(s) left over"
        )
    missing = set(specs) - set(inputs)
    if missing:
        raise OipError(400, f"missing inputs: {sorted(missing)}")
    outputs: tuple[RequestedOutput, ...] | None = None
    if request.outputs:
        picked: list[RequestedOutput] = []
        for out in request.outputs:
            if any(p.name == out.name for p in picked):  # no amplification by repetition
                raise OipError(400, f"output {out.name!r} requested twice")
            if "classification" in (out.parameters or {}):
                raise OipError(400, "the classification extension is not supported")
            picked.append(RequestedOutput(out.name, _flag(out.parameters, "binary_data", out.name)))
        outputs = tuple(picked)
    binary_output = _flag(request.parameters, "binary_data_output", "request") or False
    return InferenceRequest(request.id, inputs, outputs, binary_output)


def select_outputs(
    request: InferenceRequest, produced: Mapping[str, Array]
) -> list[tuple[str, Array, bool]]:
    """(name, array, as binary?) for each output to return, in the order asked for."""
    if request.outputs is None:
        return [(name, arr, request.binary_output) for name, arr in produced.items()]
    chosen = []
    for out in request.outputs:
        if out.name not in produced:
            raise OipError(400, f"unknown output {out.name!r}")
        binary = request.binary_output if out.binary is None else out.binary
        chosen.append((out.name, produced[out.name], binary))
    return chosen


def _datatype(arr: Array) -> str:
    return "BYTES" if arr.dtype.kind in "OSU" else oip_datatype(arr)


def _raw(arr: Array) -> bytes:
    if arr.dtype.kind in "OSU":
        parts = []
        for v in arr.reshape(-1).tolist():
            data = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts += [_LENGTH_PREFIX.pack(len(data)), data]
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def _json_values(arr: Array) -> list[Any]:
    flat: list[Any] = arr.reshape(-1).tolist()
    if arr.dtype.kind in "OS":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    return flat


def encode_infer_response(
    head: dict[str, Any], outputs: Sequence[tuple[str, Array, bool]]
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length.

    Non-finite floats are written as ``NaN``/``Infinity`` (what Python's and rapidjson's
    readers accept) rather than refusing to answer.
    """
    docs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, arr, binary in outputs:
        doc: dict[str, Any] = {"name": name, "shape": list(arr.shape), "datatype": _datatype(arr)}
        if binary:
            raw = _raw(arr)
            doc["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            doc["data"] = _json_values(arr)
        docs.append(doc)
    text = json.dumps({**head, "outputs": docs}, separators=(",", ":")).encode()
    if not blobs:
        return text, None
    return b"".join([text, *blobs]), len(text)
