"""``trustload fetch SRC DEST [SRC DEST ...]``: KServe's storage-initializer contract.

KServe runs the container of a ``ClusterStorageContainer`` as the pod's
``storage-initializer`` init container with argv pairs ``SRC DEST`` (usually one pair,
``DEST=/mnt/models``, an emptyDir the server container then mounts read-only). For
``SRC = trustload://NAME@REF`` this module runs the *same* start-up gate as ``verify``
and ``serve`` (:func:`trustload.gate.run_gate`), then writes the verified files under
``DEST`` with :mod:`trustload.stagetree` (hard links of the hashed inodes, read-only,
journaled publish).

Where it writes, on a read-only root filesystem as a non-root user:

* ``DEST/.trustload-tmp/cache``: the gate's blob cache is *forced* there for this run
  (whatever ``[gate].cache_dir`` says), so the verified blobs can be hard-linked into the
  tree and vanish with the workspace; the cache is fresh on every run.
* ``[gate].state_dir`` and ``[gate].audit_log``: as configured; they must be writable
  (deploy/kserve mounts an emptyDir at ``/var/lib/trustload``), checked before anything
  is fetched (exit 2 otherwise), because a decision that cannot be audited is not made.
* ``$TRUSTLOAD_TERMINATION_LOG`` (default ``/dev/termination-log`` when writable): the
  summary KServe / Kubernetes surface as the container's termination message.

Several pairs are all-or-nothing: every model is gated and staged before the first one
is published; one deny (exit 1) leaves every ``DEST`` empty.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustload.decision import CheckResult, Decision, Event, ReasonCode
from trustload.errors import UsageError
from trustload.facts import ModelRef

if TYPE_CHECKING:
    from trustload.config import ClientFileConfig
    from trustload.gate import GateResult

SCHEME = "trustload://"
DEFAULT_CONFIG = "/etc/trustload/gate.toml"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
MAX_TERMINATION_BYTES = 4096
_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Pair:
    source: str
    ref: ModelRef
    dest: Path


def parse_source(text: str) -> ModelRef:
    """``trustload://NAME@REF`` -> ModelRef; anything else is a usage error (exit 2)."""
    scheme, sep, rest = text.partition("://")
    if not sep or f"{scheme.lower()}://" != SCHEME:
        raise UsageError(f"unsupported storage URI {text!r}: expected {SCHEME}NAME@REF")
    ref = ModelRef.parse(rest)
    if not _PART_RE.fullmatch(ref.name) or not _PART_RE.fullmatch(ref.ref):
        raise UsageError(
            f"bad model reference {rest!r}: NAME and REF are letters, digits, '.', '_', '-'"
        )
    return ref


def parse_pairs(argv: list[str]) -> list[Pair]:
    """KServe's argv: ``SRC DEST`` pairs; odd counts, duplicate or nested DESTs refused."""
    if not argv or len(argv) % 2:
        raise UsageError(f"expected pairs SRC DEST [SRC DEST ...], got {len(argv)} argument(s)")
    pairs: list[Pair] = []
    for src, dest in zip(argv[0::2], argv[1::2], strict=True):
        if not dest or dest.startswith(SCHEME):
            raise UsageError(f"bad destination {dest!r} for {src!r}")
        pairs.append(Pair(src, parse_source(src), Path(os.path.abspath(dest))))
    dests = [p.dest for p in pairs]
    for i, a in enumerate(dests):
        for b in dests[i + 1 :]:
            if a == b or a in b.parents or b in a.parents:
                raise UsageError(f"destinations {a} and {b} overlap")
    return pairs


def config_path() -> Path:
    return Path(os.environ.get("TRUSTLOAD_CONFIG") or DEFAULT_CONFIG)


def _writable_dir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"{what} {path} cannot be created ({exc.strerror}): on a read-only root "
            "filesystem point it at a writable volume (an emptyDir)"
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path} is not writable: point it at a writable volume")


def preflight(config: ClientFileConfig) -> None:
    """The gate's own writable places must exist before anything is fetched."""
    _writable_dir(config.gate.state_dir, "[gate].state_dir")
    _writable_dir(config.gate.audit_log.parent, "the directory of [gate].audit_log")


def _with_cache(config: ClientFileConfig, cache_dir: Path) -> ClientFileConfig:
    gate = config.gate.model_copy(update={"cache_dir": cache_dir})
    return config.model_copy(update={"gate": gate})


def _fail(decision: Decision, message: str) -> None:
    """Turn a permit into a deny when its verified bytes could not be published."""
    decision.checks.append(CheckResult.failed("publish", ReasonCode.REGISTRY_UNAVAILABLE, message))
    decision.event = Event.STARTUP_DENY


def _gate_all(config: ClientFileConfig, pairs: list[Pair], owned: list[Path]) -> list[GateResult]:
    """``owned``: the DESTs found empty (or holding only our leftovers) and so ours."""
    from trustload import stagetree
    from trustload.gate import run_gate

    results: list[GateResult] = []
    for pair in pairs:
        stagetree.recover(pair.dest)
        owned.append(pair.dest)
        tmp = stagetree.prepare(pair.dest)
        cfg = _with_cache(config, tmp / "cache")
        results.append(run_gate(cfg, pair.ref, record_audit=False))
    return results


def _stage_and_publish(pairs: list[Pair], results: list[GateResult]) -> None:
    """Stage every permitted model, then publish them all; any failure denies all."""
    from trustload import stagetree

    trees: list[Path] = []
    for pair, result in zip(pairs, results, strict=True):
        assert result.layout is not None and result.files is not None
        digests = {f.path: f.sha256 for f in result.files}
        files = [(rel, blob, digests[rel]) for rel, blob in result.layout.files]
        try:
            trees.append(stagetree.stage(stagetree.workspace(pair.dest), files))
        except stagetree.StageError as exc:
            _fail(result.decision, str(exc))
            return
    for pair, tree, result in zip(pairs, trees, results, strict=True):
        try:
            stagetree.publish(pair.dest, tree)
        except stagetree.StageError as exc:
            _fail(result.decision, str(exc))
            return


def run_fetch(config: ClientFileConfig, pairs: list[Pair]) -> list[Decision]:
    """Gate, stage and publish every pair; on any deny every DEST is left empty."""
    from trustload import stagetree
    from trustload.audit import AuditLog

    preflight(config)
    results: list[GateResult] = []
    owned: list[Path] = []
    try:
        results = _gate_all(config, pairs, owned)
        if all(r.decision.permitted for r in results):
            _stage_and_publish(pairs, results)
    finally:
        if len(results) < len(pairs) or not all(r.decision.permitted for r in results):
            for dest in owned:
                stagetree.discard(dest)
                _empty_published(dest)
    decisions = [r.decision for r in results]
    log = AuditLog(config.gate.audit_log)
    for decision in decisions:
        log.append(decision.to_json())  # the outcome as published, once per decision
    return decisions


def _empty_published(dest: Path) -> None:
    """A later pair failed after this DEST was published: take its tree back out. Only
    for a DEST that :func:`trustload.stagetree.recover` found empty at the start."""
    from trustload import stagetree

    if dest.is_dir():
        for name in os.listdir(dest):
            stagetree.remove_entry(dest / name)


def summary(decisions: list[Decision], error: str | None = None) -> bytes:
    """The termination message: at most 4 KiB of JSON, whatever the inputs."""
    verdict = (
        "error"
        if error
        else ("permit" if decisions and all(d.permitted for d in decisions) else "deny")
    )
    models: list[dict[str, Any]] = [
        {
            "requested": d.requested,
            "decision": d.decision,
            "reasons": [str(r) for r in d.reasons],
            "model": d.model,
            "version": d.version,
            "artifact_digest": d.artifact_digest,
        }
        for d in decisions
    ]
    doc: dict[str, Any] = {"decision": verdict, "models": models}
    if error:
        doc["error"] = error[:1024]
    raw = json.dumps(doc, separators=(",", ":")).encode()
    while len(raw) > MAX_TERMINATION_BYTES and doc["models"]:
        doc["models"] = doc["models"][:-1]
        doc["truncated"] = len(models) - len(doc["models"])
        raw = json.dumps(doc, separators=(",", ":")).encode()
    return raw[:MAX_TERMINATION_BYTES]


def write_termination_log(message: bytes) -> None:
    """``$TRUSTLOAD_TERMINATION_LOG``, else ``/dev/termination-log`` if writable."""
    explicit = os.environ.get("TRUSTLOAD_TERMINATION_LOG")
    path = Path(explicit or DEFAULT_TERMINATION_LOG)
    if not explicit and not os.access(path, os.W_OK):
        return
    flags = os.O_WRONLY | os.O_TRUNC | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, message[:MAX_TERMINATION_BYTES])
        finally:
            os.close(fd)
    except OSError as exc:
        sys.stderr.write(f"trustload: warning: termination log {path}: {exc.strerror}\n")
