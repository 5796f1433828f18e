"""Model signatures: round trips, tampering anywhere, wrong keys, hostile bundles, and
interoperability with the model-signing library in both directions."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tests.crypto.helpers import NOW
from trustload.checks.signature import check_model_signature
from trustload.decision import ReasonCode
from trustload.digests import ModelLayout, measure
from trustload.errors import UsageError
from trustload.facts import TrustAnchors
from trustload.signing import default_signature_path, sign_layout_bundle, sign_model


def anchors_for(pub: Path) -> TrustAnchors:
    return TrustAnchors(public_keys=(pub.read_bytes(),))


def verify(
    model: Path, sig: Path | bytes | None, pub: Path, **kw: object
) -> tuple[bool, ReasonCode | None, str]:
    data = sig.read_bytes() if isinstance(sig, Path) else sig
    out = check_model_signature(ModelLayout.from_path(model), data, anchors_for(pub), now=NOW)
    assert out.result.name == "signature"
    return out.result.ok, out.result.code, out.result.detail


def test_directory_round_trip(model_dir: Path, keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    sig = sign_model(model_dir, key)
    assert sig == model_dir.parent / "resnet.sig"
    out = check_model_signature(
        ModelLayout.from_path(model_dir), sig.read_bytes(), anchors_for(pub), now=NOW
    )
    assert out.result.ok, out.result.detail
    assert out.signer is not None and out.signer.startswith("sha256:")
    assert out.files is not None
    measured = measure(model_dir)
    assert out.files == measured.files  # per-file digests come from the exact bytes


def test_file_round_trip(model_file: Path, keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    sig = sign_model(model_file, key)
    assert sig == model_file.with_name("model.safetensors.sig")
    statement = json.loads(
        base64.b64decode(json.loads(sig.read_bytes())["dsseEnvelope"]["payload"])
    )
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert [r["name"] for r in statement["predicate"]["resources"]] == ["."]
    assert (
        statement["predicate"]["resources"][0]["digest"]
        == hashlib.sha256(model_file.read_bytes()).hexdigest()
    )
    assert verify(model_file, sig, pub)[0]


def test_default_paths(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    assert default_signature_path(d) == tmp_path / "dir.sig"
    assert default_signature_path(tmp_path / "f.onnx") == tmp_path / "f.onnx.sig"


def _flip_each_byte_position(path: Path) -> list[int]:
    size = path.stat().st_size
    return sorted({0, size // 2, size - 1})


def test_one_byte_change_anywhere_in_directory(model_dir: Path, keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    sig = sign_model(model_dir, key)
    for f in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        original = f.read_bytes()
        for pos in _flip_each_byte_position(f):
            changed = bytearray(original)
            changed[pos] ^= 0x01
            f.write_bytes(bytes(changed))
            ok, code, detail = verify(model_dir, sig, pub)
            assert not ok and code == ReasonCode.SIGNATURE_INVALID, (f, pos, detail)
            f.write_bytes(original)
    assert verify(model_dir, sig, pub)[0]


def test_one_byte_change_in_file_and_truncation(
    model_file: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    sig = sign_model(model_file, key)
    original = model_file.read_bytes()
    for pos in _flip_each_byte_position(model_file):
        changed = bytearray(original)
        changed[pos] ^= 0x80
        model_file.write_bytes(bytes(changed))
        assert verify(model_file, sig, pub)[1] == ReasonCode.SIGNATURE_INVALID
    model_file.write_bytes(original[:-1])
    assert verify(model_file, sig, pub)[1] == ReasonCode.SIGNATURE_INVALID
    model_file.write_bytes(original + b"\x00")
    assert verify(model_file, sig, pub)[1] == ReasonCode.SIGNATURE_INVALID


def test_file_added_or_removed_or_renamed(model_dir: Path, keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    sig = sign_model(model_dir, key)
    extra = model_dir / "sub" / "extra.py"
    extra.write_text("import os")
    ok, code, detail = verify(model_dir, sig, pub)
    assert not ok and code == ReasonCode.SIGNATURE_INVALID and "extra.py" in detail
    extra.unlink()
    (model_dir / "config.json").unlink()
    ok, code, detail = verify(model_dir, sig, pub)
    assert not ok and code == ReasonCode.SIGNATURE_INVALID and "config.json" in detail
    (model_dir / "config.json").write_text('{"layers": 3}')
    assert verify(model_dir, sig, pub)[0]
    (model_dir / "a-b").rename(model_dir / "a-c")
    assert verify(model_dir, sig, pub)[1] == ReasonCode.SIGNATURE_INVALID


def test_empty_file_added(model_dir: Path, keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    sig = sign_model(model_dir, key)
    (model_dir / "empty").write_bytes(b"")
    assert verify(model_dir, sig, pub)[1] == ReasonCode.SIGNATURE_INVALID


def test_wrong_key(
    model_dir: Path, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    key, _pub = keypair
    _okey, opub = other_keypair
    sig = sign_model(model_dir, key)
    ok, code, _ = verify(model_dir, sig, opub)
    assert not ok and code == ReasonCode.SIGNATURE_INVALID


def test_no_anchor_and_unusable_anchor(model_dir: Path, keypair: tuple[Path, Path]) -> None:
    key, _pub = keypair
    data = sign_model(model_dir, key).read_bytes()
    layout = ModelLayout.from_path(model_dir)
    for anchors in (TrustAnchors(), TrustAnchors(public_keys=(b"garbage",))):
        out = check_model_signature(layout, data, anchors, now=NOW)
        assert out.result.code == ReasonCode.SIGNATURE_INVALID


def test_missing_signature(model_dir: Path, keypair: tuple[Path, Path]) -> None:
    _key, pub = keypair
    for data in (None, b"", b"  \n"):
        ok, code, _ = verify(model_dir, data, pub)
        assert not ok and code == ReasonCode.SIGNATURE_MISSING


def test_signature_swapped_between_models(
    model_dir: Path, model_file: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    dsig = sign_model(model_dir, key)
    fsig = sign_model(model_file, key)
    assert verify(model_file, dsig, pub)[1] == ReasonCode.SIGNATURE_INVALID
    assert verify(model_dir, fsig, pub)[1] == ReasonCode.SIGNATURE_INVALID


def _bundle_variants(good: bytes) -> dict[str, bytes]:
    doc = json.loads(good)
    payload = base64.b64decode(doc["dsseEnvelope"]["payload"])
    variants: dict[str, bytes] = {
        "garbage": os.urandom(300),
        "truncated": good[: len(good) // 2],
        "oversized": b'{"a":"' + b"x" * (17 * 1024 * 1024) + b'"}',
        "deeply-nested": b"[" * 100_000 + b"]" * 100_000,
        "non-utf8": good.replace(b'"mediaType"', b'"media\xffType"'),
        "bom": b"\xef\xbb\xbf" + good,
        "duplicate-key": good.replace(b'{"mediaType"', b'{"mediaType": "x", "mediaType"', 1),
        "not-object": b"[1,2,3]",
        "nan": b'{"mediaType": NaN}',
        "empty-object": b"{}",
        "huge-int": b'{"a": ' + b"9" * 5000 + b"}",
    }
    # A payload with a duplicate key, correctly signed: the signed bytes are ambiguous.
    dup = payload.replace(
        b'"predicateType"', b'"predicateType": "https://evil", "predicateType"', 1
    )
    doc2 = json.loads(good)
    doc2["dsseEnvelope"]["payload"] = base64.b64encode(dup).decode()
    variants["payload-duplicate-key-unsigned"] = json.dumps(doc2).encode()
    doc3 = json.loads(good)
    doc3["dsseEnvelope"]["payloadType"] = "application/json"
    variants["payload-type-changed"] = json.dumps(doc3).encode()
    doc4 = json.loads(good)
    doc4["dsseEnvelope"]["signatures"] = []
    variants["no-signatures"] = json.dumps(doc4).encode()
    doc5 = json.loads(good)
    doc5["dsseEnvelope"]["signatures"][0]["sig"] = "!!!"
    variants["bad-base64"] = json.dumps(doc5).encode()
    return variants


def test_hostile_bundles_are_denied_never_raise(
    model_dir: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    good = sign_model(model_dir, key).read_bytes()
    for name, data in _bundle_variants(good).items():
        ok, code, detail = verify(model_dir, data, pub)
        assert not ok, name
        assert code == ReasonCode.SIGNATURE_INVALID, (name, code, detail)


def test_signed_payload_with_duplicate_keys_is_refused(
    model_dir: Path, keypair: tuple[Path, Path]
) -> None:
    """Even correctly signed, a payload with duplicate keys is refused (parser confusion)."""
    from tests.crypto.helpers import envelope_json, load_key

    key, pub = keypair
    good = json.loads(sign_model(model_dir, key).read_bytes())
    payload = base64.b64decode(good["dsseEnvelope"]["payload"])
    dup = payload.replace(
        b'"predicateType"', b'"predicateType": "https://evil", "predicateType"', 1
    )
    good["dsseEnvelope"] = envelope_json(load_key(key), dup)
    ok, code, detail = verify(model_dir, json.dumps(good).encode(), pub)
    assert not ok and code == ReasonCode.SIGNATURE_INVALID and "duplicate" in detail


def test_symlinks_and_special_files_refused(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    key, _ = keypair
    d = tmp_path / "m"
    d.mkdir()
    (d / "a").write_text("a")
    (d / "link").symlink_to(d / "a")
    with pytest.raises(UsageError, match="symlink"):
        sign_model(d, key)
    (d / "link").unlink()
    os.mkfifo(d / "fifo")
    with pytest.raises(UsageError, match="special"):
        sign_model(d, key)
    (d / "fifo").unlink()
    with pytest.raises(UsageError):
        sign_model(d, key, out=d / "inside.sig")


def statement_of(sig: Path) -> dict:  # type: ignore[type-arg]
    envelope = json.loads(sig.read_bytes())["dsseEnvelope"]
    return json.loads(base64.b64decode(envelope["payload"]))  # type: ignore[no-any-return]


def test_files_mode_for_every_size(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    """A file above the old 256 MiB shard threshold is still signed with its whole-file
    SHA-256 (its content address: a cold gate hashes it once, while downloading), and
    model-signing's own verifier accepts that signature."""
    key, pub = keypair
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:  # sparse: cheap to write, every byte still hashed
        fh.write(os.urandom(4096))
        fh.seek(257 * 1024 * 1024)
        fh.write(os.urandom(4096))
    sig = sign_model(big, key)
    st = statement_of(sig)
    assert st["predicate"]["serialization"]["method"] == "files"
    ((res,),) = [st["predicate"]["resources"]]
    assert res["name"] == "." and res["algorithm"] == "sha256"
    with big.open("rb") as fh:
        assert res["digest"] == hashlib.file_digest(fh, "sha256").hexdigest()
    out = check_model_signature(
        ModelLayout.from_path(big), sig.read_bytes(), anchors_for(pub), now=NOW
    )
    # The signed digest is the whole-file SHA-256 the engine pins: no second measurement.
    assert out.result.ok and out.files is not None and out.files[0].sha256 == res["digest"]
    from model_signing import verifying

    verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(big, sig)
    with big.open("r+b") as fh:
        fh.seek(100 * 1024 * 1024)
        fh.write(b"\x01")
    with pytest.raises(ValueError):
        verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(big, sig)


def test_shard_mode_only_when_asked_for_a_single_file(
    model_file: Path, model_dir: Path, keypair: tuple[Path, Path]
) -> None:
    key, _pub = keypair
    for bad in (0, -1):
        with pytest.raises(UsageError, match="shard"):
            sign_model(model_file, key, shard_size=bad)
    with pytest.raises(UsageError, match="single-file"):
        sign_model(model_dir, key, shard_size=3000)
    model_file.write_bytes(b"")
    with pytest.raises(UsageError, match="empty"):
        sign_model(model_file, key, shard_size=3000)


def test_shard_mode_signatures_still_verify(model_file: Path, keypair: tuple[Path, Path]) -> None:
    """Shard mode (opt-in here; model-signing's CLI signers use it) keeps verifying."""
    key, pub = keypair
    model_file.write_bytes(os.urandom(10_000))
    sig = sign_model(model_file, key, shard_size=3000)
    st = statement_of(sig)
    assert st["predicate"]["serialization"]["method"] == "shards"
    assert [r["name"] for r in st["predicate"]["resources"]] == [
        ".:0:3000",
        ".:3000:6000",
        ".:6000:9000",
        ".:9000:10000",
    ]
    out = check_model_signature(
        ModelLayout.from_path(model_file), sig.read_bytes(), anchors_for(pub), now=NOW
    )
    assert out.result.ok and out.files is None
    data = bytearray(model_file.read_bytes())
    data[9999] ^= 1
    model_file.write_bytes(bytes(data))
    assert verify(model_file, sig, pub)[1] == ReasonCode.SIGNATURE_INVALID
    model_file.write_bytes(bytes(data) + b"x")  # appended bytes outside every shard
    assert verify(model_file, sig, pub)[1] == ReasonCode.SIGNATURE_INVALID
    # model-signing's default verifier (config guessed from the signature) accepts it too.
    data[9999] ^= 1
    model_file.write_bytes(bytes(data))
    from model_signing import verifying

    verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(model_file, sig)


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "p384"])
def test_other_key_types(model_dir: Path, tmp_path: Path, kind: str) -> None:
    priv: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "ed25519":
        priv = ed25519.Ed25519PrivateKey.generate()
    elif kind == "rsa":
        priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        priv = ec.generate_private_key(ec.SECP384R1())
    key = tmp_path / f"{kind}.key"
    pub = tmp_path / f"{kind}.pub"
    key.write_bytes(
        priv.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        priv.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    data = sign_layout_bundle(ModelLayout.from_path(model_dir), key)
    assert verify(model_dir, data, pub)[0]
    (model_dir / "config.json").write_text("{}")
    assert verify(model_dir, data, pub)[1] == ReasonCode.SIGNATURE_INVALID


def test_cosign_detached_blob_signature(
    model_file: Path, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    """cosign sign-blob output: base64 ECDSA-P256 over SHA-256(file), verified with cosign.pub."""
    from tests.crypto.helpers import load_key

    key, pub = keypair
    digest = hashlib.sha256(model_file.read_bytes()).digest()
    sig = base64.b64encode(load_key(key).sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
    out = check_model_signature(
        ModelLayout.from_path(model_file), sig + b"\n", anchors_for(pub), now=NOW
    )
    assert out.result.ok and out.files is not None and out.files[0].sha256 == digest.hex()
    assert verify(model_file, sig, other_keypair[1])[1] == ReasonCode.SIGNATURE_INVALID
    model_file.write_bytes(b"changed")
    assert verify(model_file, sig, pub)[1] == ReasonCode.SIGNATURE_INVALID
    assert verify(model_file, b"@@notbase64@@", pub)[1] == ReasonCode.SIGNATURE_INVALID


def test_model_signing_signs_trustload_verifies(
    model_dir: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    from model_signing import signing as ms_signing

    key, pub = keypair
    sig = tmp_path / "ms.sig"
    ms_signing.Config().use_elliptic_key_signer(private_key=key).sign(model_dir, sig)
    ok, code, detail = verify(model_dir, sig, pub)
    assert ok, detail
    (model_dir / "sub" / "weights.bin").write_bytes(b"W" * 10_000)
    assert verify(model_dir, sig, pub)[1] == ReasonCode.SIGNATURE_INVALID


def test_model_signing_single_file_signature(
    model_file: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    from model_signing import signing as ms_signing

    key, pub = keypair
    sig = tmp_path / "ms-file.sig"
    ms_signing.Config().use_elliptic_key_signer(private_key=key).sign(model_file, sig)
    assert verify(model_file, sig, pub)[0]


def test_trustload_signs_model_signing_verifies(
    model_dir: Path, model_file: Path, keypair: tuple[Path, Path]
) -> None:
    from model_signing import verifying

    key, pub = keypair
    for model in (model_dir, model_file):
        sig = sign_model(model, key)
        verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(model, sig)
    (model_dir / "config.json").write_text("tampered")
    with pytest.raises(ValueError):
        verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(
            model_dir, default_signature_path(model_dir)
        )


def test_every_single_byte_of_a_small_model(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    d = tmp_path / "tiny"
    (d / "s").mkdir(parents=True)
    (d / "w.bin").write_bytes(bytes(range(40)))
    (d / "s" / "c.json").write_bytes(b'{"k": 1}')
    sig = sign_model(d, key)
    for f in (d / "w.bin", d / "s" / "c.json"):
        original = f.read_bytes()
        for pos in range(len(original)):
            changed = bytearray(original)
            changed[pos] ^= 0x01
            f.write_bytes(bytes(changed))
            assert verify(d, sig, pub)[1] == ReasonCode.SIGNATURE_INVALID, (f, pos)
        f.write_bytes(original)
    assert verify(d, sig, pub)[0]


def test_cache_layout_blobs(model_dir: Path, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    """A cached model (bytes under blobs/sha256/<hex>) verifies like the working tree."""
    import shutil

    key, pub = keypair
    data = sign_model(model_dir, key).read_bytes()
    blobs = tmp_path / "cache" / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    files = []
    for entry in measure(model_dir).files:
        shutil.copyfile(model_dir / entry.path, blobs / entry.sha256)
        files.append((entry.path, blobs / entry.sha256))
    layout = ModelLayout("directory", model_dir.name, tuple(sorted(files)))
    out = check_model_signature(layout, data, anchors_for(pub), now=NOW)
    assert out.result.ok and out.files == measure(model_dir).files
    victim = files[0][1]
    victim.write_bytes(victim.read_bytes() + b"!")
    out = check_model_signature(layout, data, anchors_for(pub), now=NOW)
    assert out.result.code == ReasonCode.SIGNATURE_INVALID


def _signed_statement_bundle(key: Path, statement: dict[str, object]) -> bytes:
    from tests.crypto.helpers import envelope_json, load_key

    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
            "dsseEnvelope": envelope_json(load_key(key), json.dumps(statement).encode()),
        }
    ).encode()


def test_signed_but_hostile_manifests(model_dir: Path, keypair: tuple[Path, Path]) -> None:
    """A trusted signer's statement that is malformed or unsafe is still refused."""
    from trustload.formats.oms import Resource, build_statement, root_digest

    key, pub = keypair
    entries = measure(model_dir).files
    good = [Resource(e.path, None, None, e.sha256) for e in entries]

    def stmt(resources: list[Resource], method: str = "files", shard: int | None = None) -> dict:  # type: ignore[type-arg]
        return build_statement(model_dir.name, method, resources, shard)

    hostile: dict[str, dict] = {  # type: ignore[type-arg]
        "traversal": stmt([*good, Resource("../outside", None, None, "0" * 64)]),
        "absolute": stmt([*good, Resource("/etc/passwd", None, None, "0" * 64)]),
        "dot-dir": stmt([Resource(".", None, None, good[0].digest)]),
    }
    dup = stmt(good)
    dup["predicate"]["resources"].append(dict(dup["predicate"]["resources"][0]))  # type: ignore[index]
    hostile["duplicate-resource"] = dup
    wrong_root = stmt(good)
    wrong_root["subject"][0]["digest"]["sha256"] = "0" * 64  # type: ignore[index]
    hostile["subject-not-covering"] = wrong_root
    other_pred = stmt(good)
    other_pred["predicateType"] = "https://model_signing/Digests/v0.1"
    hostile["old-predicate"] = other_pred
    symlinks = stmt(good)
    symlinks["predicate"]["serialization"]["allow_symlinks"] = True  # type: ignore[index]
    hostile["allow-symlinks"] = symlinks
    md5 = stmt(good)
    md5["predicate"]["serialization"]["hash_type"] = "md5"  # type: ignore[index]
    hostile["md5"] = md5
    gap = [Resource("model.onnx", 0, 10, "0" * 64), Resource("model.onnx", 20, 30, "0" * 64)]
    hostile["shard-gap"] = stmt(gap, "shards", 10)
    two_subjects = stmt(good)
    two_subjects["subject"].append({"name": "x", "digest": {"sha256": root_digest(good)}})  # type: ignore[attr-defined]
    hostile["two-subjects"] = two_subjects
    for name, statement in hostile.items():
        ok, code, detail = verify(model_dir, _signed_statement_bundle(key, statement), pub)
        assert not ok and code == ReasonCode.SIGNATURE_INVALID, (name, detail)
    # Sanity: the same construction with the honest statement verifies.
    assert verify(model_dir, _signed_statement_bundle(key, stmt(good)), pub)[0]
