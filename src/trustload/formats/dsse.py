"""DSSE envelopes (Dead Simple Signing Envelope, secure-systems-lab/dsse v1.0).

The signature covers ``PAE(payloadType, payload)``, never the JSON around it, so the
payload bytes that are verified are exactly the bytes later parsed: a statement
"shown beside" the envelope (for example a bundle's decoded copy) is never trusted.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trustload.decision import ReasonCode
from trustload.errors import FormatError
from trustload.formats.jsonstrict import loads_strict, require_object, require_str

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
MAX_SIGNATURES = 8
MAX_SIG_BYTES = 16 * 1024


@dataclass(frozen=True)
class DsseSignature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[DsseSignature, ...]

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def b64decode_strict(text: str, *, code: ReasonCode, what: str, max_len: int) -> bytes:
    """Standard or URL-safe base64, padding optional; anything else is a format error."""
    if not isinstance(text, str) or len(text) > (max_len * 4) // 3 + 8:
        raise FormatError(code, f"{what}: not base64 or too large")
    cleaned = text.strip()
    if "-" in cleaned or "_" in cleaned:
        cleaned = cleaned.replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        out = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(code, f"{what}: invalid base64") from None
    if len(out) > max_len:
        raise FormatError(code, f"{what}: too large")
    return out


def parse_envelope_obj(obj: Any, *, code: ReasonCode) -> Envelope:
    """Validate a decoded DSSE envelope object (from a bare envelope or a bundle)."""
    env = require_object(obj, code=code, what="DSSE envelope")
    payload_type = require_str(env, "payloadType", code=code, what="DSSE envelope", max_len=256)
    payload = b64decode_strict(
        require_str(env, "payload", code=code, what="DSSE envelope"),
        code=code,
        what="DSSE payload",
        max_len=MAX_PAYLOAD_BYTES,
    )
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise FormatError(code, "DSSE envelope: no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise FormatError(code, "DSSE envelope: too many signatures")
    parsed: list[DsseSignature] = []
    for item in sigs:
        s = require_object(item, code=code, what="DSSE signature")
        keyid = s.get("keyid", "")
        if keyid is None:
            keyid = ""
        if not isinstance(keyid, str) or len(keyid) > 1024:
            raise FormatError(code, "DSSE signature: bad keyid")
        raw = b64decode_strict(
            require_str(s, "sig", code=code, what="DSSE signature"),
            code=code,
            what="DSSE signature",
            max_len=MAX_SIG_BYTES,
        )
        if not raw:
            raise FormatError(code, "DSSE signature: empty")
        parsed.append(DsseSignature(keyid, raw))
    return Envelope(payload_type, payload, tuple(parsed))


def parse_envelope(data: bytes, *, code: ReasonCode = ReasonCode.ATTESTATION_INVALID) -> Envelope:
    return parse_envelope_obj(loads_strict(data, code=code, what="DSSE envelope"), code=code)


PAE_PREFIX = b"DSSEv1 "
_MAX_LEN_DIGITS = 20


def _pae_length(read_at: Callable[[int, int], bytes], offset: int) -> tuple[int, int] | None:
    """Parse ``<decimal> SP`` at ``offset``: (value, offset after the space), or None."""
    chunk = read_at(offset, _MAX_LEN_DIGITS + 1)
    end = chunk.find(b" ")
    digits = chunk[:end] if end > 0 else b""
    if not digits or not digits.isdigit() or (len(digits) > 1 and digits[:1] == b"0"):
        return None
    return int(digits), offset + len(digits) + 1


def parses_as_pae(read_at: Callable[[int, int], bytes], size: int) -> bool:
    """True if ``size`` bytes, read through ``read_at(offset, n)``, are exactly some
    ``PAE(type, body)``.

    Why: a detached blob signature is ECDSA over SHA-256(file) and DSSE signs
    ``PAE(type, payload)`` with the same keys and hash, so an envelope's signature is a
    valid blob signature for a file holding that PAE. The detached-blob path refuses
    such files; only the two length fields are read, so the cost is constant.
    """
    if size < len(PAE_PREFIX) or read_at(0, len(PAE_PREFIX)) != PAE_PREFIX:
        return False
    first = _pae_length(read_at, len(PAE_PREFIX))
    if first is None:
        return False
    type_len, after = first
    separator = after + type_len
    if separator >= size or read_at(separator, 1) != b" ":
        return False
    second = _pae_length(read_at, separator + 1)
    if second is None:
        return False
    body_len, body_start = second
    return body_start + body_len == size


def bytes_parse_as_pae(data: bytes) -> bool:
    return parses_as_pae(lambda off, n: data[off : off + n], len(data))
