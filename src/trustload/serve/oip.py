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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trustload.serve.loader import TensorSpec, numpy_dtype

Array = npt.NDArray[Any]
MAX_TENSOR_RANK = 8
MAX_TENSORS = 64

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


def parse_infer_request(
    body: bytes, specs: Mapping[str, TensorSpec], limits: Limits
) -> InferenceRequest:
    """Parse and bound one inference request against the served model's inputs."""
    request = _validated(body)
    inputs: dict[str, Array] = {}
    for tensor in request.inputs:
        spec = _spec_for(tensor, specs)
        if tensor.name in inputs:
            raise OipError(400, f"input {tensor.name!r} given twice")
        shape, count = checked_shape(tensor.name, tensor.shape, limits)
        if tensor.data is None:
            raise OipError(400, f"input {tensor.name!r} has no data")
        try:
            dtype = numpy_dtype(spec.datatype)
        except ValueError as exc:
            raise OipError(400, f"input {tensor.name!r}: {exc}") from exc
        inputs[tensor.name] = _json_array(tensor.name, tensor.data, dtype, shape, count)
    missing = set(specs) - set(inputs)
    if missing:
        raise OipError(400, f"missing inputs: {sorted(missing)}")
    outputs = (
        tuple(RequestedOutput(o.name, None) for o in request.outputs) if request.outputs else None
    )
    return InferenceRequest(request.id, inputs, outputs, False)
