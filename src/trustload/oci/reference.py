"""Image and artifact references, pinned by digest.

A reference with only a tag is refused: a tag is mutable, so verifying "what ``:latest``
points to now" proves nothing about what a runtime pulls a second later (R5, pin by digest).
Patterns use ``fullmatch`` so that a trailing newline never yields a second, look-alike name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trustload.errors import UsageError
from trustload.identifiers import Kind

LAYOUT_PREFIX = "oci-layout:"
_DIGEST = Kind.DIGEST.value
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
_REGISTRY_REF = re.compile(
    rf"(?P<host>{_HOST})/(?P<repo>{_REPO})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
_LAYOUT_REF = re.compile(rf"(?P<dir>.+)@(?P<digest>{_DIGEST})", re.DOTALL)
DIGEST_RE = re.compile(_DIGEST)


@dataclass(frozen=True)
class RegistryRef:
    """``HOST[:PORT]/REPO@sha256:<hex>`` (a tag, if given, is kept for display only)."""

    host: str
    repository: str
    digest: str
    tag: str | None = None

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}@{self.digest}"


@dataclass(frozen=True)
class LayoutRef:
    """``oci-layout:DIR@sha256:<hex>``: an OCI image layout as ``cosign save --dir`` writes."""

    directory: Path
    digest: str

    def __str__(self) -> str:
        return f"{LAYOUT_PREFIX}{self.directory}@{self.digest}"


Reference = RegistryRef | LayoutRef


def parse_reference(text: str) -> Reference:
    """Parse a pinned reference; a tag-only, malformed or unpinned one is a usage error."""
    if text.startswith(LAYOUT_PREFIX):
        m = _LAYOUT_REF.fullmatch(text[len(LAYOUT_PREFIX) :])
        if m is None or "\n" in m["dir"]:
            raise UsageError(f"{text!r}: expected oci-layout:DIR@sha256:<64 hex> (pin by digest)")
        return LayoutRef(Path(m["dir"]), m["digest"])
    m = _REGISTRY_REF.fullmatch(text)
    if m is None:
        raise UsageError(f"{text!r}: expected HOST[:PORT]/REPO@sha256:<64 hex>")
    if m["digest"] is None:
        raise UsageError(f"{text!r}: a tag is mutable; pin by digest (HOST/REPO@sha256:<hex>)")
    return RegistryRef(m["host"], m["repo"], m["digest"], m["tag"])


ARTIFACT_URI_PREFIX = "oci://"
MAX_ARTIFACT_URI = 512


def parse_artifact_uri(text: str) -> RegistryRef:
    """A version record's ``artifact_uri``: ``oci://HOST[:PORT]/REPO@sha256:<hex>``,
    pinned by digest, no tag (the record is immutable; a tag would only mislead)."""
    if not isinstance(text, str) or len(text) > MAX_ARTIFACT_URI:
        raise UsageError("artifact_uri must be a string of at most 512 characters")
    m = _REGISTRY_REF.fullmatch(text.removeprefix(ARTIFACT_URI_PREFIX))
    if not text.startswith(ARTIFACT_URI_PREFIX) or m is None or m["digest"] is None or m["tag"]:
        raise UsageError(f"{text[:200]!r}: expected oci://HOST[:PORT]/REPO@sha256:<64 hex>")
    return RegistryRef(m["host"].lower(), m["repo"], m["digest"])


def artifact_uri(ref: RegistryRef) -> str:
    return f"{ARTIFACT_URI_PREFIX}{ref.host}/{ref.repository}@{ref.digest}"


def parse_registry_ref(text: str) -> RegistryRef:
    """Like :func:`parse_reference`, but only a registry reference will do."""
    ref = parse_reference(text)
    if not isinstance(ref, RegistryRef):
        raise UsageError(f"{text!r}: a registry reference is needed here, not a layout")
    return ref
