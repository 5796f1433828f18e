"""The identifier grammar: one pattern per kind of identifier, one way to apply it.

Why this module exists: ``re.match(r"^...$", s)`` accepts ``s`` with a trailing newline
(``$`` also matches just before a final ``\\n``), so ``risk`` and ``risk\\n`` became two
models that print alike in every log. Every identifier check in trustload goes through
:func:`is_valid` (``fullmatch`` on an unanchored pattern), so the whole class is closed in
one place; the Registry's OpenAPI document derives its ``pattern`` keywords from the same
strings (:func:`json_pattern`), so what clients are told is what the server enforces.

Patterns are ASCII-only character classes (``[0-9]``, never ``\\d``, which also matches
other scripts' digits).
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum
from functools import cache
from typing import TypeGuard

MAX_JSON_INT = 2**53 - 1
"""Largest integer any API field or parameter accepts: the I-JSON (RFC 7493) safe range,
inside SQL BIGINT. Not 2**63 - 1: that bound is not exact as an IEEE double, so JSON
Schema validators and JavaScript clients round it and take 2**63 + 191 as within it."""


class Kind(Enum):
    """Each identifier kind and its pattern (no anchors: applied with ``fullmatch``)."""

    NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
    """Model names, versions, aliases (a version or an alias is a ``ref``)."""
    HEX64 = r"[0-9a-f]{64}"
    """A blob's name: the lowercase hex of its SHA-256."""
    HEX = r"[0-9a-f]{1,128}"
    """Lowercase hex of some digest algorithm (its length is checked by the caller)."""
    DIGEST = r"sha256:[0-9a-f]{64}"
    """A content digest as records carry it."""
    TENANT = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,255}"
    """A tenant id (token claim ``tenant_id``, model card ``tenant_id``)."""
    LABEL = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
    """Purposes and domains (token claims ``purpose`` / ``domain``)."""
    DECIMAL = r"[0-9]{1,19}"
    """A non-negative decimal integer as text (headers, shard names): at most 19 digits."""

    def accepts(self, value: object) -> TypeGuard[str]:
        """True when ``value`` is a string that is *entirely* one identifier of this kind."""
        return isinstance(value, str) and _compiled(self).fullmatch(value) is not None


@cache
def _compiled(kind: Kind) -> re.Pattern[str]:
    return re.compile(kind.value)


def is_valid(kind: Kind, value: object) -> bool:
    """Functional spelling of :meth:`Kind.accepts`."""
    return kind.accepts(value)


def has_control(text: str) -> bool:
    """True if ``text`` holds a control character (C0, DEL, C1) or a line/paragraph
    separator: free-form fields that end up in logs (a token's ``sub``) refuse them."""
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text)


BLANK_CHARS = (
    "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
"""What counts as blank in free text (a reason, a change ticket): the union of Python's,
ECMA 262's and Rust regex's whitespace. Each engine's ``\\s`` differs (U+0085 is blank to
Python and pydantic-core, not to ECMA 262; U+FEFF the other way round), so the served
schema and the server spell the set out instead (schemathesis ST202 found ``"\\u0085"``)."""


def strip_blank(text: str) -> str:
    """``text`` without leading or trailing :data:`BLANK_CHARS`."""
    return text.strip(BLANK_CHARS)


def nonblank_pattern() -> str:
    """A JSON Schema ``pattern`` (unanchored search) matching text with at least one
    character outside :data:`BLANK_CHARS`, in escapes every engine reads the same way."""
    return "[^" + "".join(f"\\u{ord(ch):04x}" for ch in BLANK_CHARS) + "]"


def json_pattern(kind: Kind) -> str:
    """The pattern as a JSON Schema / OpenAPI ``pattern`` (ECMA 262, unanchored search
    semantics, so anchored here; in ECMA 262 ``$`` only matches at the very end)."""
    return f"^{kind.value}$"


def parse_decimal(text: str | None) -> int | None:
    """A header-style non-negative integer (``Content-Length``), or None if it is not
    one. ``str.isdigit`` would accept ``"²"``, which ``int`` then refuses."""
    if text is None or not is_valid(Kind.DECIMAL, text):
        return None
    value = int(text)
    return value if value <= 2**63 - 1 else None
