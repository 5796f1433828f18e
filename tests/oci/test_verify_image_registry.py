"""``trustload verify-image`` on registry references, end to end against docker-registry.

What ``sign-image`` / ``attest-image`` wrote (and what a hostile pusher wrote) is read
back through the OCI client and judged by the cosign verifier: permit with the signer's
key; deny an unsigned image, another key, and a 10,000-layer ``.sig`` manifest with
``IMAGE_SIGNATURE_INVALID``.
"""

from __future__ import annotations

import json
import subprocess
import time
from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.support.cli import run_cli as _cli
from tests.support.ocireg import RunningOciRegistry, make_image, push_image
from trustload.crypto.keys import generate_keypair
from trustload.oci.registry import RegistryRepository
from trustload.oci.transport import OciTransport

pytestmark = pytest.mark.skipif(
    find_spec("trustload.image") is None, reason="the cosign verifier (verify-image) is not here"
)


def _reasons(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in done.stderr, done.stderr
    return list(json.loads(done.stdout)["reasons"])


@pytest.fixture
def signed(ocireg_basic: RunningOciRegistry, tmp_path: Path) -> dict[str, object]:
    reg = ocireg_basic
    repo = RegistryRepository(OciTransport(reg.config()), reg.host, "serving")
    signed_image, unsigned_image = make_image(b"signed\n"), make_image(b"unsigned\n")
    push_image(repo, signed_image, "signed")
    push_image(repo, unsigned_image, "unsigned")
    config = reg.toml(tmp_path / "oci.toml")
    priv, pub = generate_keypair(tmp_path / "signer")
    _, other = generate_keypair(tmp_path / "other")
    ref = f"{reg.host}/serving@{signed_image.digest}"
    done = _cli("sign-image", ref, "--key", str(priv), "--config", str(config))
    assert done.returncode == 0, done.stderr
    return {
        "reg": reg, "repo": repo, "config": config, "priv": priv, "pub": pub, "other": other,
        "ref": ref, "unsigned": f"{reg.host}/serving@{unsigned_image.digest}",
        "digest": signed_image.digest,
    }  # fmt: skip


def test_verify_image_permits_signed_registry_image(signed: dict[str, object]) -> None:
    done = _cli("verify-image", str(signed["ref"]), "--key", str(signed["pub"]),
                "--config", str(signed["config"]), "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["decision"] == "permit"


def test_verify_image_denies_unsigned_and_wrong_key(signed: dict[str, object]) -> None:
    for ref, key in ((signed["unsigned"], signed["pub"]), (signed["ref"], signed["other"])):
        done = _cli("verify-image", str(ref), "--key", str(key),
                    "--config", str(signed["config"]), "--json")  # fmt: skip
        assert done.returncode == 1, done.stdout + done.stderr
        assert _reasons(done) == ["IMAGE_SIGNATURE_INVALID"]


def test_verify_image_attestation_from_attest_image(signed: dict[str, object]) -> None:
    digest = str(signed["digest"])
    facts = ("--git-sha", "c" * 40, "--container-digest", digest, "--dataset-snapshot", "ds-9")
    done = _cli("attest-image", str(signed["ref"]), "--key", str(signed["priv"]),
                "--config", str(signed["config"]), *facts)  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = _cli("verify-image", str(signed["ref"]), "--key", str(signed["pub"]),
                "--config", str(signed["config"]), "--attestation-type", "slsaprovenance1",
                *facts, "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    wrong = ("--git-sha", "d" * 40, *facts[2:])
    done = _cli("verify-image", str(signed["ref"]), "--key", str(signed["pub"]),
                "--config", str(signed["config"]), "--attestation-type", "slsaprovenance1",
                *wrong, "--json")  # fmt: skip
    assert done.returncode == 1 and _reasons(done) == ["ATTESTATION_MISMATCH"]


def test_verify_image_ten_thousand_layer_sig_in_registry(signed: dict[str, object]) -> None:
    """A hostile pusher replaces the ``.sig`` tag with a 10,000-layer manifest."""
    repo = signed["repo"]
    assert isinstance(repo, RegistryRepository)
    digest = str(signed["digest"])
    tag = digest.replace(":", "-") + ".sig"
    current = repo.tagged_manifest(tag)
    assert current is not None
    doc = json.loads(current.raw)
    doc["layers"] = doc["layers"] * 10_000
    repo.push_manifest(json.dumps(doc).encode(), doc["mediaType"], tag)
    started = time.monotonic()
    done = _cli("verify-image", str(signed["ref"]), "--key", str(signed["pub"]),
                "--config", str(signed["config"]), "--json")  # fmt: skip
    assert time.monotonic() - started < 60
    assert done.returncode == 1 and _reasons(done) == ["IMAGE_SIGNATURE_INVALID"]


def test_verify_image_unlisted_registry(signed: dict[str, object], tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    done = _cli("verify-image", str(signed["ref"]), "--key", str(signed["pub"]),
                "--config", str(empty), "--json")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "REGISTRY_NOT_ALLOWED" in done.stdout + done.stderr


def _push_referrer(repo: RegistryRepository, subject: str, size: int, bundle: bytes) -> str:
    """A cosign-3 bundle referrer as @sigstore/oci writes it, plus its fallback index."""
    bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json"
    empty = repo.push_bytes(b"{}", "application/vnd.oci.empty.v1+json")
    layer = repo.push_bytes(bundle, bundle_type)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": bundle_type,
        "config": {"mediaType": empty.media_type, "digest": empty.digest, "size": empty.size},
        "layers": [{"mediaType": bundle_type, "digest": layer.digest, "size": layer.size}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": subject, "size": size},
    }).encode()  # fmt: skip
    digest = repo.push_manifest(manifest, "application/vnd.oci.image.manifest.v1+json", "ref-a")
    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": digest, "size": len(manifest), "artifactType": bundle_type}],
    })  # fmt: skip


def test_verify_image_bundle_referrer_and_index_for_another_subject(
    signed: dict[str, object], tmp_path: Path
) -> None:
    """A cosign-3 bundle referrer permits its image; listed in another image's referrers
    index (a lying index), it does not make that image signed."""
    cosign_layout = pytest.importorskip("tests.support.cosign_layout")
    from trustload.crypto.keys import load_private_key

    reg = signed["reg"]
    assert isinstance(reg, RunningOciRegistry)
    repo = RegistryRepository(OciTransport(reg.config()), reg.host, "bundled")
    a, b = make_image(b"bundle-signed\n"), make_image(b"not signed at all\n")
    push_image(repo, a, "a")
    push_image(repo, b, "b")
    key = load_private_key(Path(str(signed["priv"])))
    index = _push_referrer(
        repo, a.digest, len(a.manifest), cosign_layout.message_bundle(key, a.digest)
    )
    index_type = "application/vnd.oci.image.index.v1+json"
    for image in (a, b):  # the same index, under A's referrers tag and (a lie) under B's
        repo.push_manifest(index.encode(), index_type, image.digest.replace(":", "-"))
    verdicts = []
    for image in (a, b):
        done = _cli("verify-image", f"{reg.host}/bundled@{image.digest}", "--key",
                    str(signed["pub"]), "--config", str(signed["config"]), "--json")  # fmt: skip
        verdicts.append((done.returncode, _reasons(done)))
    assert verdicts == [(0, []), (1, ["IMAGE_SIGNATURE_INVALID"])]
