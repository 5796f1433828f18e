"""Rego evaluation with ``regopy``: compile once, evaluate many times, fail closed.

The engine queries the whole ``data.registry.download`` document, bound to a
variable (``x := data.registry.download``): regopy 1.5.2 returns a bare false value
as *undefined*, and binding sidesteps that. From the document it reads:

* ``permit`` — must be exactly ``true``;
* ``deny`` — a set of messages (``deny contains msg if``) or, for old-style
  ``deny[msg]`` rules, an object whose keys are the messages.

The verdict permits only when ``permit`` is ``true`` and ``deny`` is empty. An
undefined result, an evaluation error, a non-boolean ``permit`` or a malformed
``deny`` is a denial. ``regopy`` is imported lazily (it is heavy, and the CLI's
start-up time is benchmarked).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trustload.errors import UsageError
from trustload.policy.bundle import PolicyBundle, load_bundle

PACKAGE = "registry.download"
QUERY = "x := data.registry.download"
MAX_DENY_MESSAGES = 64
MAX_MESSAGE_CHARS = 500
_ERRMSG = re.compile(r"\(errormsg \d+:([^)]*)\)")
_ERRLOC = re.compile(r"\(error \d+:([^|\s]*)\|")


@dataclass(frozen=True)
class PolicyVerdict:
    """What the policy said: ``permit`` and every ``deny`` message (sorted)."""

    permit: bool
    denials: tuple[str, ...]
    error: str | None = None


def _rego_error_text(exc: Exception) -> str:
    """Turn regopy's S-expression error dump into one readable line."""
    raw = str(exc)
    messages = _ERRMSG.findall(raw)
    places = _ERRLOC.findall(raw)
    if not messages:
        return raw.strip().replace("\n", " ")[:MAX_MESSAGE_CHARS]
    parts = []
    for i, msg in enumerate(messages[:5]):
        where = places[i] if i < len(places) else ""
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)[:MAX_MESSAGE_CHARS]


class PolicyEngine:
    """A compiled policy bundle. Thread-safe: evaluations are serialised by a lock.

    Build it with :meth:`from_dir` (or :meth:`from_bundle`); ``digest`` is the
    bundle's ``policy_digest`` computed over the very bytes that were compiled.
    """

    def __init__(self, bundle: PolicyBundle) -> None:
        import regopy

        self.bundle = bundle
        self.digest: str = bundle.digest
        self._lock = threading.Lock()
        interp = regopy.Interpreter()
        interp.log_level = regopy.LogLevel.NONE  # otherwise parse errors go to stdout
        try:
            for path, source in bundle.modules:
                interp.add_module(path, source)
            data = bundle.data
            if data is not None:
                interp.add_data_json(json.dumps(data))
            compiled = interp.build(QUERY)
        except regopy.RegoError as exc:
            raise UsageError(f"policy bundle does not compile: {_rego_error_text(exc)}") from exc
        if not compiled.ok():
            raise UsageError("policy bundle does not compile")
        self._regopy = regopy
        self._interp = interp
        self._compiled = compiled

    @classmethod
    def from_dir(cls, path: Path) -> PolicyEngine:
        """Load (bounded), digest and compile the bundle at ``path``; usage error if bad."""
        return cls(load_bundle(path))

    @classmethod
    def from_bundle(cls, bundle: PolicyBundle) -> PolicyEngine:
        return cls(bundle)

    def evaluate(self, input_doc: dict[str, Any]) -> PolicyVerdict:
        """Evaluate the policy over ``input_doc``. Never raises; errors deny."""
        try:
            with self._lock:
                self._interp.set_input(self._regopy.Input(input_doc))
                output = self._compiled_query()
            return _verdict(output)
        except Exception as exc:  # fail closed on anything
            return PolicyVerdict(False, (), f"policy evaluation failed: {_rego_error_text(exc)}")

    def _compiled_query(self) -> list[dict[str, Any]]:
        output = self._interp.query_bundle(self._compiled)
        return [r.bindings for r in output.results]


def _verdict(results: list[dict[str, Any]]) -> PolicyVerdict:
    if len(results) != 1 or "x" not in results[0]:
        return PolicyVerdict(False, (), f"policy package {PACKAGE} is undefined for this input")
    doc = results[0]["x"]
    if not isinstance(doc, dict):
        return PolicyVerdict(False, (), f"data.{PACKAGE} is not a document")
    permit = doc.get("permit")
    raw_deny = doc.get("deny", [])
    if isinstance(raw_deny, dict):  # old-style deny[msg] rules yield an object
        messages = [k for k, v in raw_deny.items() if v is not False]
    elif isinstance(raw_deny, list):
        messages = list(raw_deny)
    else:
        return PolicyVerdict(False, (), "deny is neither a set nor an object")
    denials = sorted(
        (m if isinstance(m, str) else json.dumps(m, sort_keys=True))[:MAX_MESSAGE_CHARS]
        for m in messages
    )[:MAX_DENY_MESSAGES]
    error = None
    if permit is not True and permit is not False:
        error = f"permit is {json.dumps(permit)[:80]}, not a boolean"
    return PolicyVerdict(permit is True and not denials and error is None, tuple(denials), error)
