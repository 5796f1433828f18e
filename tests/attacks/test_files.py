"""File attacks on directory models and on the gate's cache: paths, added / removed
files, symlinks, special files and bytes swapped between verification and load."""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.helpers import (
    Arena,
    Gate,
    assert_cache_verified,
    assert_decision_denied,
    assert_denied,
    assert_load_refused,
    cache_path,
)
from tests.attacks.hostile import Mitm
from tests.crypto.helpers import envelope_json, load_key
from trustload.cache import BlobCache, BlobResult
from trustload.decision import ReasonCode
from trustload.errors import TrustloadError
from trustload.formats.oms import Resource, build_statement
from trustload.gate import GateResult
from trustload.serve.loader import load_verified


def directory_model(arena: Arena, gate: Gate) -> tuple[str, GateResult]:
    name = arena.name("dir")
    arena.publish(name, "1", arena.model_dir())
    result = gate.run(f"{name}@production")
    assert result.decision.permitted, result.decision.to_json()
    return name, result


def load(result: GateResult) -> TrustloadError:
    """Run the verified-bytes loader in a thread, so a hang is a failure, not a stuck CI."""
    assert result.layout is not None and result.files is not None and result.record is not None
    box: list[BaseException] = []

    def work() -> None:
        try:
            load_verified(result.layout, result.files, result.record.format)  # type: ignore[arg-type]
        except BaseException as exc:
            box.append(exc)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "the loader hung on a planted file"
    assert box and isinstance(box[0], TrustloadError), box
    return box[0]


def model_file_path(result: GateResult, rel: str = "model.onnx") -> Path:
    assert result.layout is not None
    return result.layout.paths()[rel]


def test_files_symlink_escaping_directory_model(arena: Arena, gate: Gate, tmp_path: Path) -> None:
    """After verification, a model file of the directory is replaced by a symlink to a
    file outside it (same bytes today, attacker-controlled tomorrow).

    Attack: files / symlink
    """
    name, result = directory_model(arena, gate)
    target = model_file_path(result)
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    assert_load_refused(load(result), ReasonCode.DIGEST_MISMATCH)
    again = gate.run(f"{name}@production")  # the next start evicts the planted link
    assert again.decision.permitted and not model_file_path(again).is_symlink()
    assert_cache_verified(gate.cache_dir)


def test_files_special_file_planted_in_cache(arena: Arena, gate: Gate) -> None:
    """After verification, a model file is replaced by a FIFO (would block a naive open).

    Attack: files / special file
    """
    name, result = directory_model(arena, gate)
    target = model_file_path(result)
    target.unlink()
    os.mkfifo(target)
    assert_load_refused(load(result), ReasonCode.DIGEST_MISMATCH)


def test_files_cache_swapped_between_verification_and_load(arena: Arena, gate: Gate) -> None:
    """The cached artifact is atomically swapped for other bytes after the gate verified it.

    Attack: files / time-of-check to time-of-use
    """
    name = arena.good()
    result = gate.run(f"{name}@production")
    assert result.decision.permitted
    target = model_file_path(result)
    swap = target.with_name("swap")
    swap.write_bytes(os.urandom(target.stat().st_size))
    os.replace(swap, target)
    assert_load_refused(load(result), ReasonCode.DIGEST_MISMATCH)


def test_files_cache_written_right_after_download(
    arena: Arena, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who can write the gate's cache changes a model blob in place right after
    its download, while the gate holds the digests of the bytes that arrived (one pass:
    the checks do not read the file again). The blob no longer has the identity those
    digests were recorded for, so its bytes are hashed and judged; the next start evicts
    and fetches it again.

    Attack: files / cache written between download and checks
    """
    name = arena.good()
    real = BlobCache.ensure

    def ensure_then_tamper(self: BlobCache, *args: Any, **kw: Any) -> BlobResult:
        res = real(self, *args, **kw)
        if res.fetched and kw.get("label") == "model.onnx":
            os.chmod(res.path, 0o644)
            data = bytearray(res.path.read_bytes())
            data[len(data) // 2] ^= 1
            with res.path.open("r+b") as fh:  # same inode, same size
                fh.write(bytes(data))
        return res

    monkeypatch.setattr(BlobCache, "ensure", ensure_then_tamper)
    result = gate.run(f"{name}@production")
    assert_decision_denied(
        result.decision,
        ReasonCode.DIGEST_MISMATCH,
        ReasonCode.SIGNATURE_INVALID,
        ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
    )
    assert result.layout is None
    monkeypatch.setattr(BlobCache, "ensure", real)
    again = gate.run(f"{name}@production")
    assert again.decision.permitted, again.decision.to_json()
    assert_cache_verified(gate.cache_dir)


def test_files_cache_poisoned_before_start_is_evicted(arena: Arena, gate: Gate) -> None:
    """A cached blob replaced (or a FIFO planted) before the next start is never trusted."""
    name, first = directory_model(arena, gate)
    target = model_file_path(first)
    target.unlink()
    os.mkfifo(target)
    box: list[GateResult] = []
    t = threading.Thread(target=lambda: box.append(gate.run(f"{name}@production")), daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "the gate hung on a FIFO planted in its cache"
    assert box[0].decision.permitted
    assert_cache_verified(gate.cache_dir)


def _tampered_directory(arena: Arena, gate: Gate, change: str) -> GateResult:
    original = arena.model_dir({"model.onnx": os.urandom(4096), "a.json": b"{}", "b.txt": b"b"})
    signed = arena.sign(original)  # evidence over the original directory
    if change == "add":
        (original / "extra.py").write_bytes(b"import os; os.system('id')\n")
    elif change == "remove":
        (original / "b.txt").unlink()
    else:
        data = bytearray((original / "model.onnx").read_bytes())
        data[0] ^= 1
        (original / "model.onnx").write_bytes(bytes(data))
    name = arena.name("dir")
    arena.publish(name, "1", original, signed=signed)
    return gate.run(f"{name}@production")


def test_files_file_added_to_signed_directory(arena: Arena, gate: Gate) -> None:
    """A file added to a signed directory model (the manifest lists it, the signature not).

    Attack: files / directory integrity
    """
    assert_denied(
        _tampered_directory(arena, gate, "add"),
        ReasonCode.SIGNATURE_INVALID,
        ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_files_file_removed_from_signed_directory(arena: Arena, gate: Gate) -> None:
    """A file removed from a signed directory model.

    Attack: files / directory integrity
    """
    assert_denied(
        _tampered_directory(arena, gate, "remove"),
        ReasonCode.SIGNATURE_INVALID,
        ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_files_one_byte_changed_in_signed_directory(arena: Arena, gate: Gate) -> None:
    """One byte changed in one file of a signed directory model.

    Attack: files / directory integrity
    """
    assert_denied(
        _tampered_directory(arena, gate, "flip"),
        ReasonCode.SIGNATURE_INVALID,
        ReasonCode.ATTESTATION_SUBJECT_MISMATCH,
        cache_dir=gate.cache_dir,
    )


def test_files_dotdot_path_in_record(arena: Arena, gate: Gate) -> None:
    """The record lists a directory file at `../../etc/cron.d/x` (write outside the cache).

    Attack: files / path traversal
    """
    name = arena.name("dir")
    arena.publish(name, "1", arena.model_dir())

    def escape(doc: dict[str, Any]) -> dict[str, Any]:
        files = [dict(f) for f in doc["files"]]
        files[0]["path"] = "../../etc/cron.d/x"
        return {**doc, "files": files}

    with Mitm(arena.reg) as mitm:
        mitm.on_record = escape
        result = gate.run(f"{name}@production", gate.via(mitm.url))
    assert_denied(result, ReasonCode.REGISTRY_UNAVAILABLE, cache_dir=gate.cache_dir)


def test_files_dotdot_path_in_signed_manifest(arena: Arena, gate: Gate) -> None:
    """A validly signed model statement naming a resource `../outside.bin`.

    Attack: files / path traversal
    """
    path = arena.model_dir()
    signed = arena.sign(path)
    bundle = json.loads(signed.signature)
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    digest = "a" * 64
    evil = build_statement(path.name, "files", [Resource("../outside.bin", None, None, digest)])
    evil["predicate"] = statement["predicate"] | {
        "resources": evil["predicate"]["resources"] + statement["predicate"]["resources"]
    }
    bundle["dsseEnvelope"] = envelope_json(
        load_key(arena.env.signing_key), json.dumps(evil).encode()
    )
    name = arena.name("dir")
    arena.publish(name, "1", path, signed=signed, signature=json.dumps(bundle).encode())
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.SIGNATURE_INVALID, cache_dir=gate.cache_dir
    )


def test_files_manifest_blob_tampered_in_registry(arena: Arena, gate: Gate) -> None:
    """The directory's manifest blob in the Registry store gains a listed file.

    Attack: files / directory integrity
    """
    name = arena.name("dir")
    rec = arena.publish(name, "1", arena.model_dir())
    blob = arena.reg.blob_path(rec.artifact_digest)
    os.chmod(blob, 0o644)
    doc = json.loads(blob.read_bytes())
    doc["files"].append({"path": "zz.py", "sha256": "b" * 64, "size": 1})
    blob.write_bytes(json.dumps(doc).encode())
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.DIGEST_MISMATCH, cache_dir=gate.cache_dir
    )


def test_files_cached_copy_rotten_and_registry_copy_too(arena: Arena, gate: Gate) -> None:
    """Both the cached artifact and the Registry's copy were altered.

    Attack: files / cache poisoning
    """
    name = arena.name()
    rec = arena.publish(name, "1", arena.model_file())
    assert gate.run(f"{name}@production").decision.permitted
    for blob in (cache_path(gate, rec.artifact_digest), arena.reg.blob_path(rec.artifact_digest)):
        os.chmod(blob, 0o644)
        data = bytearray(blob.read_bytes())
        data[-1] ^= 0x80
        blob.write_bytes(bytes(data))
    assert_denied(
        gate.run(f"{name}@production"), ReasonCode.DIGEST_MISMATCH, cache_dir=gate.cache_dir
    )
