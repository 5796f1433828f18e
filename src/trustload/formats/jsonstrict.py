"""A strict JSON loader for signed evidence.

Signed documents are parsed with one loader that refuses what a permissive parser
would silently accept: duplicate object keys (two readers could see two different
documents), non-UTF-8 bytes, oversized input, pathological nesting, NaN/Infinity and
huge integers. Every refusal is a :class:`~trustload.errors.FormatError` carrying the
reason code the caller chose, never a traceback.
"""

from __future__ import annotations

import json
from typing import Any

from trustload.decision import ReasonCode
from trustload.errors import FormatError

MAX_JSON_BYTES = 16 * 1024 * 1024
"""Upper bound for any signed JSON document (bundles, envelopes, statements)."""
MAX_DEPTH = 64
MAX_INT_DIGITS = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _parse_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise ValueError("integer too large")
    return int(text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r:.60}")
        obj[key] = value
    return obj


def _depth_ok(value: Any, limit: int) -> bool:
    """Iterative depth check of a parsed document (the C parser itself is recursion-safe)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in node)
    return True


def loads_strict(
    data: bytes | str,
    *,
    code: ReasonCode = ReasonCode.SIGNATURE_INVALID,
    what: str = "document",
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Parse one JSON document strictly; raise ``FormatError(code)`` on anything odd."""
    if isinstance(data, str):
        text = data
        if len(text) > max_bytes:
            raise FormatError(code, f"{what}: larger than {max_bytes} bytes")
    else:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise FormatError(code, f"{what}: not bytes")
        if len(data) > max_bytes:
            raise FormatError(code, f"{what}: larger than {max_bytes} bytes")
        try:
            text = bytes(data).decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise FormatError(code, f"{what}: not UTF-8 ({exc.reason})") from None
    if text.startswith("\ufeff"):
        raise FormatError(code, f"{what}: byte-order mark refused")
    if not text.strip():
        raise FormatError(code, f"{what}: empty")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
        )
    except RecursionError:
        raise FormatError(code, f"{what}: nested deeper than {max_depth}") from None
    except ValueError as exc:
        raise FormatError(code, f"{what}: invalid JSON ({str(exc)[:160]})") from None
    if not _depth_ok(value, max_depth):
        raise FormatError(code, f"{what}: nested deeper than {max_depth}")
    return value


def require_object(value: Any, *, code: ReasonCode, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(code, f"{what}: expected a JSON object")
    return value


def require_str(
    obj: dict[str, Any], key: str, *, code: ReasonCode, what: str, max_len: int = 1 << 20
) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise FormatError(code, f"{what}: field {key!r} must be a string")
    if len(value) > max_len:
        raise FormatError(code, f"{what}: field {key!r} too long")
    return value
