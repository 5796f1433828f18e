"""Model loaders that load exactly the bytes the gate verified (R3 step 6).

The gate verifies a cached blob; a loader that re-opened the file by path afterwards
would leave a window in which another process could swap the bytes (time-of-check to
time-of-use). So every loader here reads the blob through **one** open descriptor into
memory while hashing it, compares that hash in constant time with the digest the gate
verified, and hands the in-memory bytes to the runtime library
(``onnxruntime.InferenceSession(bytes)``). What runs is what was checked.

Pickle-based formats (``.pt``, ``.pth``, ``.pkl``, ``.pickle``, ``.joblib``) are
refused unless ``[gate].allow_pickle`` is set: unpickling executes code chosen by
whoever wrote the file, so a signature only proves *who* shipped that code, not that
it is harmless. ONNX and safetensors are data-only formats.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from trustload.decision import ReasonCode
from trustload.digests import FileEntry, ModelLayout, digests_equal
from trustload.errors import TrustloadError

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".joblib", ".bin")
PICKLE_FORMATS = frozenset(
    {"pt", "pth", "pytorch", "torch", "torchscript", "pkl", "pickle", "joblib"}
)
DEFAULT_MAX_MODEL_BYTES = 4 * 1024**3
_READ_CHUNK = 4 * 1024 * 1024
_MAX_SAFETENSORS_HEADER = 16 * 1024 * 1024

Array = npt.NDArray[Any]


class LoadError(TrustloadError):
    """The verified model could not be loaded; the runtime treats it as a denial."""


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output: OIP v2 datatype and shape (-1 for a dynamic dim)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


# OIP v2 datatype names <-> numpy dtypes.
_OIP_TO_NUMPY: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
_ORT_TO_OIP = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
}
_ST_TO_OIP = {
    "BOOL": "BOOL",
    "U8": "UINT8",
    "I8": "INT8",
    "I16": "INT16",
    "U16": "UINT16",
    "I32": "INT32",
    "U32": "UINT32",
    "I64": "INT64",
    "U64": "UINT64",
    "F16": "FP16",
    "F32": "FP32",
    "F64": "FP64",
}


def numpy_dtype(datatype: str) -> Any:
    try:
        return _OIP_TO_NUMPY[datatype]
    except KeyError as exc:
        raise ValueError(f"unsupported datatype {datatype!r}") from exc


def oip_datatype(array: Array) -> str:
    for name, dtype in _OIP_TO_NUMPY.items():
        if array.dtype == np.dtype(dtype):
            return name
    raise ValueError(f"unsupported output dtype {array.dtype}")


def read_verified(path: Path, expected_hex: str, max_bytes: int = DEFAULT_MAX_MODEL_BYTES) -> bytes:
    """Read a blob through one descriptor while hashing it; return the bytes if they match.

    ``O_NOFOLLOW`` refuses a symlink planted in the cache; ``fstat`` on the same
    descriptor bounds the size before anything is allocated. A mismatch is
    ``DIGEST_MISMATCH``: the bytes changed after the gate verified them.
    """
    try:
        # O_NONBLOCK: a FIFO planted in the cache must not block the loader.
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise LoadError(
            ReasonCode.DIGEST_MISMATCH, f"cannot open verified blob: {exc.strerror}"
        ) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LoadError(ReasonCode.DIGEST_MISMATCH, "verified blob is not a regular file")
        size = st.st_size
        if size > max_bytes:
            raise LoadError(
                ReasonCode.POLICY_DENY, f"model of {size} bytes exceeds the {max_bytes} limit"
            )
        buf = bytearray(size)
        view = memoryview(buf)
        h = hashlib.sha256()
        offset = 0
        while offset < size:
            n = os.readv(fd, [view[offset : offset + _READ_CHUNK]])
            if n == 0:
                break
            h.update(view[offset : offset + n])
            offset += n
        if offset != size or os.read(fd, 1):
            raise LoadError(ReasonCode.DIGEST_MISMATCH, "blob changed size while being loaded")
    finally:
        os.close(fd)
    if not digests_equal(h.hexdigest(), expected_hex):
        raise LoadError(ReasonCode.DIGEST_MISMATCH, "blob bytes differ from the verified digest")
    return bytes(buf)


class LoadedModel:
    """A model in memory, ready to infer. Subclasses wrap one runtime library."""

    format: str = ""

    def __init__(self, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> None:
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)

    def infer(self, feeds: Mapping[str, Array]) -> dict[str, Array]:
        raise LoadError(ReasonCode.POLICY_DENY, f"format {self.format!r} cannot infer")

    def warmup_inputs(self) -> dict[str, Array]:
        """Zero-filled inputs of the declared shapes (dynamic dims -> 1; BYTES: empty strings)."""
        feeds: dict[str, Array] = {}
        for spec in self.inputs:
            shape = tuple(d if d > 0 else 1 for d in spec.shape)
            if spec.datatype == "BYTES":
                feeds[spec.name] = np.full(shape, "", dtype=object)
                continue
            feeds[spec.name] = np.zeros(shape, dtype=numpy_dtype(spec.datatype))
        return feeds

    def warmup(self) -> dict[str, Array]:
        return self.infer(self.warmup_inputs())


class OnnxModel(LoadedModel):
    """An ONNX graph run by onnxruntime from in-memory bytes."""

    format = "onnx"

    def __init__(self, data: bytes, *, threads: int = 0) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads > 0:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                data, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise LoadError(
                ReasonCode.POLICY_DENY, f"onnxruntime refused the model: {exc}"
            ) from exc

        def spec(arg: Any) -> TensorSpec:
            dims = tuple(d if isinstance(d, int) else -1 for d in (arg.shape or []))
            return TensorSpec(arg.name, _ORT_TO_OIP.get(arg.type, "BYTES"), dims)

        super().__init__(
            [spec(a) for a in self._session.get_inputs()],
            [spec(a) for a in self._session.get_outputs()],
        )

    def infer(self, feeds: Mapping[str, Array]) -> dict[str, Array]:
        names = [o.name for o in self.outputs]
        results = self._session.run(names, dict(feeds))
        return {name: np.asarray(value) for name, value in zip(names, results, strict=True)}


class SafetensorsModel(LoadedModel):
    """Tensors parsed from the safetensors format (a JSON header plus raw little-endian data).

    Safetensors holds weights, not a graph, so "inference" returns the stored tensors
    by name (outputs = every tensor; no inputs): enough to serve embeddings or lookup
    tables and to prove the loaded bytes are the verified ones. Parsed by hand with
    strict bounds instead of adding a dependency.
    """

    format = "safetensors"

    def __init__(self, data: bytes) -> None:
        if len(data) < 8:
            raise LoadError(ReasonCode.POLICY_DENY, "safetensors file too short")
        (header_len,) = struct.unpack("<Q", data[:8])
        if header_len > min(_MAX_SAFETENSORS_HEADER, len(data) - 8):
            raise LoadError(ReasonCode.POLICY_DENY, "safetensors header length out of bounds")
        try:
            header = json.loads(data[8 : 8 + header_len])
        except (ValueError, UnicodeDecodeError) as exc:
            raise LoadError(ReasonCode.POLICY_DENY, "safetensors header is not JSON") from exc
        if not isinstance(header, dict):
            raise LoadError(ReasonCode.POLICY_DENY, "safetensors header is not an object")
        body = memoryview(data)[8 + header_len :]
        self._tensors: dict[str, Array] = {}
        specs: list[TensorSpec] = []
        for name, meta in sorted(header.items()):
            if name == "__metadata__":
                continue
            try:
                oip = _ST_TO_OIP[meta["dtype"]]
                shape = tuple(int(d) for d in meta["shape"])
                begin, end = (int(x) for x in meta["data_offsets"])
            except (KeyError, TypeError, ValueError) as exc:
                raise LoadError(ReasonCode.POLICY_DENY, f"bad safetensors entry {name!r}") from exc
            dtype = np.dtype(numpy_dtype(oip)).newbyteorder("<")
            count = int(np.prod(shape)) if shape else 1
            if not 0 <= begin <= end <= len(body) or end - begin != count * dtype.itemsize:
                raise LoadError(ReasonCode.POLICY_DENY, f"safetensors entry {name!r} out of bounds")
            self._tensors[name] = np.frombuffer(body[begin:end], dtype=dtype).reshape(shape)
            specs.append(TensorSpec(name, oip, shape))
        super().__init__([], specs)

    def infer(self, feeds: Mapping[str, Array]) -> dict[str, Array]:
        return dict(self._tensors)


class TorchScriptModel(LoadedModel):
    """A TorchScript archive (pickle inside): only reachable with ``allow_pickle``."""

    format = "torchscript"

    def __init__(self, data: bytes) -> None:
        try:
            import torch  # type: ignore[import-not-found]
        except ImportError as exc:
            raise LoadError(
                ReasonCode.POLICY_DENY, "pickle-based model allowed but torch is not installed"
            ) from exc
        self._torch = torch
        try:
            self._module = torch.jit.load(io.BytesIO(data), map_location="cpu")
        except Exception as exc:  # torch raises many types
            raise LoadError(ReasonCode.POLICY_DENY, f"torch refused the model: {exc}") from exc
        self._module.eval()
        super().__init__(
            [TensorSpec("input", "FP32", (-1, -1))], [TensorSpec("output", "FP32", (-1, -1))]
        )

    def infer(self, feeds: Mapping[str, Array]) -> dict[str, Array]:
        with self._torch.no_grad():
            out = self._module(
                *(self._torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values())
            )
        return {"output": np.asarray(out.numpy())}


def model_format(declared: str | None, files: Sequence[str]) -> str:
    """The loader to use: the record's / card's format, else the file extension."""
    if declared:
        return declared.strip().lower()
    for rel in files:
        suffix = Path(rel).suffix.lower()
        if suffix == ".onnx":
            return "onnx"
        if suffix == ".safetensors":
            return "safetensors"
        if suffix in PICKLE_SUFFIXES:
            return "pickle"
    return "unknown"


def is_pickle_based(fmt: str, files: Sequence[str]) -> bool:
    if fmt in PICKLE_FORMATS:
        return True
    return any(
        Path(rel).suffix.lower() in PICKLE_SUFFIXES
        for rel in files
        if fmt not in ("onnx", "safetensors")
    )


def _pick(files: Sequence[str], suffixes: tuple[str, ...], fmt: str) -> str:
    hits = [f for f in files if Path(f).suffix.lower() in suffixes]
    if len(hits) != 1:
        raise LoadError(
            ReasonCode.POLICY_DENY,
            f"expected exactly one {'/'.join(suffixes)} file for format {fmt}, found {len(hits)}",
        )
    return hits[0]


Loader = Callable[[bytes], LoadedModel]
_LOADERS: dict[str, tuple[tuple[str, ...], Loader]] = {
    "onnx": ((".onnx",), OnnxModel),
    "safetensors": ((".safetensors",), SafetensorsModel),
}


def load_verified(
    layout: ModelLayout,
    files: Sequence[FileEntry],
    declared_format: str | None,
    *,
    allow_pickle: bool = False,
    max_bytes: int = DEFAULT_MAX_MODEL_BYTES,
) -> LoadedModel:
    """Load the model the gate verified: ``layout`` says where bytes are, ``files`` their digests.

    ``files`` must be the per-file digests the gate verified (from the signed
    manifest), never digests recomputed here: the loader's hash is a second, independent
    measurement that must agree with the first.
    """
    rels = [rel for rel, _ in layout.files]
    fmt = model_format(declared_format, rels)
    digests = {f.path: f.sha256 for f in files}
    where = layout.paths()
    if is_pickle_based(fmt, rels):
        if not allow_pickle:
            raise LoadError(
                ReasonCode.POLICY_DENY,
                f"pickle-based format {fmt!r} refused: unpickling runs code from the file "
                "(set [gate].allow_pickle = true to opt in)",
            )
        rel = _pick(rels, PICKLE_SUFFIXES, fmt)
        return TorchScriptModel(read_verified(where[rel], digests[rel], max_bytes))
    if fmt not in _LOADERS:
        raise LoadError(ReasonCode.POLICY_DENY, f"no loader for model format {fmt!r}")
    suffixes, loader = _LOADERS[fmt]
    rel = rels[0] if layout.kind == "file" else _pick(rels, suffixes, fmt)
    if rel not in digests:
        raise LoadError(ReasonCode.DIGEST_MISMATCH, f"no verified digest for {rel}")
    return loader(read_verified(where[rel], digests[rel], max_bytes))
