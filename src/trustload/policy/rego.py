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
                found, doc = self._query()
            if not found:
                return PolicyVerdict(
                    False, (), f"policy package {PACKAGE} is undefined for this input"
                )
            return _verdict(doc)
        except Exception as exc:  # fail closed on anything
            return PolicyVerdict(False, (), f"policy evaluation failed: {_rego_error_text(exc)}")

    def _query(self) -> tuple[bool, dict[str, Any]]:
        """Run the compiled query and read ``permit`` / ``deny`` from the node tree.

        regopy's ``Output`` parses its own JSON rendering, which does not escape
        quotes or backslashes inside strings (a tenant named ``a"b`` breaks it), so
        the result is read from the node tree instead, where strings are exact.
        """
        from regopy import rego_shared as rs

        impl = rs.rego_bundle_query(self._interp._impl, self._compiled._impl)
        try:
            if not rs.rego_output_ok(impl):
                raise RuntimeError(str(rs.rego_output_string(impl))[:MAX_MESSAGE_CHARS])
            value = _binding_x(rs, rs.rego_output_node(impl))
            if value is None:
                return False, {}
            return True, _read_package(rs, value)
        finally:
            rs.rego_free_output(impl)


def _binding_x(rs: Any, root: Any) -> Any:
    """The node bound to ``x`` in a single result, None when undefined.

    Walks ``Results > Result > Bindings > Binding(Var, value)`` itself: regopy's
    ``rego_output_binding_at_index`` aborts the whole process (SIGABRT) when the
    output is undefined or an evaluation error (e.g. an unknown function).
    """
    from regopy.node import NodeKind

    kind = rs.rego_node_type(root)
    if kind == NodeKind.Undefined:
        return None
    if kind in (NodeKind.Error, NodeKind.ErrorSeq):
        raise RuntimeError(str(rs.rego_node_json(root))[:MAX_MESSAGE_CHARS])
    if kind != NodeKind.Results:
        raise RuntimeError(f"unexpected policy output node {kind}")
    if rs.rego_node_size(root) == 0:
        return None
    if rs.rego_node_size(root) != 1:
        raise RuntimeError("policy query produced several results")
    result = rs.rego_node_get(root, 0)
    if rs.rego_node_type(result) != NodeKind.Result:
        raise RuntimeError("unexpected policy result shape")
    for i in range(rs.rego_node_size(result)):
        bindings = rs.rego_node_get(result, i)
        if rs.rego_node_type(bindings) != NodeKind.Bindings:
            continue
        for j in range(rs.rego_node_size(bindings)):
            binding = rs.rego_node_get(bindings, j)
            if rs.rego_node_type(binding) != NodeKind.Binding or rs.rego_node_size(binding) != 2:
                continue
            var = rs.rego_node_get(binding, 0)
            if rs.rego_node_type(var) == NodeKind.Var and rs.rego_node_value(var) == "x":
                return rs.rego_node_get(binding, 1)
    return None


_NODE_LIMIT = 10_000


def _unwrap(rs: Any, node: Any) -> Any:
    from regopy.node import NodeKind

    while rs.rego_node_type(node) in (NodeKind.Term, NodeKind.Scalar):
        node = rs.rego_node_get(node, 0)
    return node


def _to_python(rs: Any, node: Any, budget: list[int], depth: int = 0) -> Any:
    """Convert a regopy node into plain Python, bounded in size and depth."""
    from regopy.node import NodeKind

    budget[0] -= 1
    if budget[0] < 0 or depth > 32:
        raise ValueError("policy result is too large")
    node = _unwrap(rs, node)
    kind = rs.rego_node_type(node)
    size = rs.rego_node_size(node)
    if kind == NodeKind.String:
        return str(rs.rego_node_value(node))
    if kind == NodeKind.Boolean:
        return rs.rego_node_value(node) == "true"
    if kind == NodeKind.Null:
        return None
    if kind == NodeKind.Int:
        return int(rs.rego_node_value(node))
    if kind == NodeKind.Float:
        return float(rs.rego_node_value(node))
    if kind in (NodeKind.Array, NodeKind.Set):
        return [_to_python(rs, rs.rego_node_get(node, i), budget, depth + 1) for i in range(size)]
    if kind == NodeKind.Object:
        out: dict[str, Any] = {}
        for i in range(size):
            item = rs.rego_node_get(node, i)
            key = _to_python(rs, rs.rego_node_get(item, 0), budget, depth + 1)
            value = _to_python(rs, rs.rego_node_get(item, 1), budget, depth + 1)
            out[key if isinstance(key, str) else json.dumps(key)] = value
        return out
    raise ValueError(f"unexpected policy result node {rs.rego_node_type_name(node)}")


def _read_package(rs: Any, node: Any) -> dict[str, Any]:
    """``permit`` and ``deny`` of the package document (other rules are not read)."""
    from regopy.node import NodeKind

    node = _unwrap(rs, node)
    if rs.rego_node_type(node) != NodeKind.Object:
        return {"permit": None, "deny": "not a document"}
    out: dict[str, Any] = {}
    budget = [_NODE_LIMIT]
    for i in range(rs.rego_node_size(node)):
        item = rs.rego_node_get(node, i)
        key = _to_python(rs, rs.rego_node_get(item, 0), budget)
        if key in ("permit", "deny"):
            out[key] = _to_python(rs, rs.rego_node_get(item, 1), budget)
    return out


def _literal_text(text: str) -> str:
    """Best-effort undo of regopy keeping string *literals* in source form.

    regopy returns a literal from the policy source in source form: sometimes with its
    quotes (an object key, a variable bound to a literal), sometimes only with its
    escapes (``deny contains "lit"``); computed strings (``sprintf``) come back
    exact. Messages are only shown to people and matched on their leading reason
    code, so a best-effort JSON unescape is safe here and nowhere else.
    """
    candidates = []
    if len(text) >= 2 and text[0] == text[-1] == '"':
        candidates.append(text)
    if "\\" in text:
        candidates.append(f'"{text}"')
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, str):
            return value
    return text


def _verdict(doc: dict[str, Any]) -> PolicyVerdict:
    permit = doc.get("permit")
    raw_deny = doc.get("deny", [])
    if isinstance(raw_deny, dict):  # old-style deny[msg] rules yield an object
        messages: list[Any] = [_literal_text(k) for k, v in raw_deny.items() if v is not False]
    elif isinstance(raw_deny, list):
        messages = [_literal_text(m) if isinstance(m, str) else m for m in raw_deny]
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
