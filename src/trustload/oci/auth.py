"""Registry credentials: Basic, and the distribution spec's Bearer token challenge.

Why parse ``WWW-Authenticate`` by hand: it is the one header a hostile registry fully
controls before we have authenticated anything, so it is bounded and parsed strictly
(a scheme, then ``key="value"`` pairs); anything else is AUTH_FAILED, never a traceback.
The password is read from ``password_file`` on every use (secrets rotate) and never
appears in a message or a ``repr``.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

from trustload.decision import ReasonCode
from trustload.errors import RegistryError

MAX_CHALLENGE = 4096
MAX_PASSWORD_FILE = 4096
MAX_TOKEN_ANSWER = 64 * 1024
MAX_TOKEN = 16 * 1024

_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_.-]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/=-]+")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-cased: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(header: str | None) -> Challenge:
    """The first challenge of a ``WWW-Authenticate`` header (distribution sends one)."""
    if not header:
        raise RegistryError(ReasonCode.AUTH_FAILED, "401 without a WWW-Authenticate challenge")
    if len(header) > MAX_CHALLENGE:
        raise RegistryError(ReasonCode.AUTH_FAILED, "WWW-Authenticate challenge too long")
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None:
            if not params:
                raise RegistryError(ReasonCode.AUTH_FAILED, "malformed WWW-Authenticate challenge")
            break  # a second challenge follows (``Bearer ..., Basic ...``): the first wins
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", m.group(2))
        pos = m.end()
    kind = scheme.lower()
    if kind not in ("basic", "bearer"):
        raise RegistryError(
            ReasonCode.AUTH_FAILED, f"unsupported authentication scheme {scheme[:32]!r}"
        )
    return Challenge(kind, params)


class Credentials:
    """A username and the file its password is read from."""

    def __init__(self, username: str, password_file: Path) -> None:
        self.username = username
        self.password_file = password_file

    def __repr__(self) -> str:
        return f"Credentials({self.username!r}, <password from {self.password_file}>)"

    def password(self) -> str:
        try:
            with self.password_file.open("rb") as fh:
                raw = fh.read(MAX_PASSWORD_FILE + 1)
        except OSError as exc:
            raise RegistryError(
                ReasonCode.AUTH_FAILED,
                f"cannot read password file {self.password_file}: {exc.strerror}",
            ) from exc
        if len(raw) > MAX_PASSWORD_FILE:
            raise RegistryError(ReasonCode.AUTH_FAILED, "password file too large")
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise RegistryError(ReasonCode.AUTH_FAILED, "password file is not UTF-8") from exc
        if not text:
            raise RegistryError(ReasonCode.AUTH_FAILED, "password file is empty")
        return text

    def basic(self) -> str:
        """The ``Authorization`` value for Basic (RFC 7617, UTF-8)."""
        pair = f"{self.username}:{self.password()}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def token_from_answer(doc: object) -> str:
    """The bearer token of a token-server answer (``token``, or OAuth2 ``access_token``)."""
    if not isinstance(doc, dict):
        raise RegistryError(ReasonCode.AUTH_FAILED, "token server answer is not a JSON object")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
        raise RegistryError(ReasonCode.AUTH_FAILED, "token server answered no usable token")
    if _TOKEN68.fullmatch(token) is None:
        raise RegistryError(ReasonCode.AUTH_FAILED, "token server answered a malformed token")
    return token
