"""Every way an OCI model is refused, each with its exact reason code, over a real
Registry and a real docker-registry."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.gate.conftest import CONTAINER, DATASET, GIT_SHA, codes
from tests.ocimodels.conftest import OciWorld, layer_data_path, push_unsigned, record
from trustload.config import OciConfig
from trustload.crypto.keys import generate_keypair
from trustload.oci.cosign_sign import DSSE_MEDIA_TYPE, attach, attest_image, sign_image
from trustload.oci.reader import Descriptor
from trustload.oci.reference import parse_artifact_uri
from trustload.oci.registry import RegistryRepository
from trustload.oci.transport import OciTransport

A_YEAR = datetime.now(UTC) + timedelta(days=365)  # the gate requires a validity window


def _sign(world: OciWorld, uri: str, key: Path, att_key: Path | None = None) -> None:
    ref = parse_artifact_uri(uri)
    assert world.oci is not None
    with OciTransport(world.oci.config()) as t:
        repo = RegistryRepository(t, ref.host, ref.repository)
        sign_image(repo, ref, key)
        attest_image(
            repo,
            ref,
            att_key or key,
            git_sha=GIT_SHA,
            container_digest=CONTAINER,
            dataset_snapshot=DATASET,
            not_after=A_YEAR,
        )


def test_tampered_layer_in_registry_storage_is_digest_mismatch(oworld: OciWorld) -> None:
    rec = oworld.publish_oci("risk", "1")
    oworld.release_to_prod("risk", "1")
    weights = next(f for f in rec.files if f.path == "model.onnx")
    assert oworld.oci is not None
    data = layer_data_path(oworld.oci, f"sha256:{weights.sha256}")
    blob = bytearray(data.read_bytes())
    blob[1000] ^= 0xFF  # same size, one byte different: the registry serves it as is
    data.write_bytes(bytes(blob))
    result = oworld.gate("risk@production")
    assert not result.decision.permitted
    assert codes(result) == ["DIGEST_MISMATCH"], result.decision.to_json()
    assert result.layout is None


def test_oci_registry_down_is_registry_unavailable_and_refresh_rule(oworld: OciWorld) -> None:
    from trustload.client.api import RegistryClient
    from trustload.gate import recheck

    oworld.publish_oci("risk", "1")
    oworld.release_to_prod("risk", "1")
    admitted = oworld.gate("risk@production")
    assert admitted.decision.permitted and admitted.held is not None
    assert oworld.oci is not None and oworld.oci.proc is not None
    oworld.oci.proc.terminate()
    oworld.oci.proc.wait(timeout=10)
    # A start-up needs the source, even with every layer cached: the cosign signature
    # and attestation are fetched fresh on every load (as the record is).
    cold = oworld.gate("risk@production", cfg=oworld.gate_cfg)
    assert codes(cold) == ["REGISTRY_UNAVAILABLE"], cold.decision.to_json()
    # The running runtime's refresh re-decides over the held bytes, as with the
    # Registry: no byte is fetched again, so the OCI registry being down changes nothing.
    with RegistryClient(oworld.gate_cfg.registry) as client:
        again = recheck(oworld.gate_cfg, client, admitted.held, "refresh")
    assert again.ok, again.detail


def test_host_not_in_oci_registries_is_registry_not_allowed(oworld: OciWorld) -> None:
    oworld.publish_oci("risk", "1")
    oworld.release_to_prod("risk", "1")
    oworld.oci_config = OciConfig()  # the gate lists no OCI registry at all
    result = oworld.gate("risk@production")
    assert codes(result) == ["REGISTRY_NOT_ALLOWED"], result.decision.to_json()


def test_unsigned_artifact_is_signature_missing(oworld: OciWorld) -> None:
    uri = push_unsigned(oworld)
    record(oworld, uri)
    result = oworld.gate("risk@production")
    assert "SIGNATURE_MISSING" in codes(result), result.decision.to_json()
    assert not result.decision.permitted


def test_signed_with_an_untrusted_key_is_signature_invalid(
    oworld: OciWorld, tmp_path: Path
) -> None:
    stranger, _pub = generate_keypair(tmp_path / "stranger")
    uri = push_unsigned(oworld)
    _sign(oworld, uri, stranger, att_key=oworld.env.signing_key)
    record(oworld, uri)
    result = oworld.gate("risk@production")
    assert codes(result) == ["SIGNATURE_INVALID"], result.decision.to_json()


def test_attestation_about_another_digest_is_subject_mismatch(oworld: OciWorld) -> None:
    from trustload.signing import attest_bytes

    uri = push_unsigned(oworld)
    ref = parse_artifact_uri(uri)
    assert oworld.oci is not None
    other = "sha256:" + hashlib.sha256(b"another artifact").hexdigest()
    envelope = attest_bytes(
        subject_name=f"{ref.host}/{ref.repository}",
        artifact_digest=other,
        key_path=oworld.env.signing_key,
        git_sha=GIT_SHA,
        container_digest=CONTAINER,
        dataset_snapshot=DATASET,
        not_after=A_YEAR,
    )
    with OciTransport(oworld.oci.config()) as t:
        repo = RegistryRepository(t, ref.host, ref.repository)
        sign_image(repo, ref, oworld.env.signing_key)
        layer = Descriptor(
            DSSE_MEDIA_TYPE,
            "sha256:" + hashlib.sha256(envelope).hexdigest(),
            len(envelope),
            {"predicateType": "https://slsa.dev/provenance/v1"},
        )
        attach(repo, ref.digest.replace(":", "-", 1) + ".att", envelope, layer)
    record(oworld, uri)
    result = oworld.gate("risk@production")
    assert codes(result) == ["ATTESTATION_SUBJECT_MISMATCH"], result.decision.to_json()


def test_no_attestation_is_attestation_missing(oworld: OciWorld) -> None:
    uri = push_unsigned(oworld)
    ref = parse_artifact_uri(uri)
    assert oworld.oci is not None
    with OciTransport(oworld.oci.config()) as t:
        sign_image(RegistryRepository(t, ref.host, ref.repository), ref, oworld.env.signing_key)
    record(oworld, uri)
    result = oworld.gate("risk@production")
    assert codes(result) == ["ATTESTATION_MISSING"], result.decision.to_json()


def test_authenticated_oci_registry_permits_and_wrong_password_is_auth_failed(
    oworld_basic: OciWorld, tmp_path: Path
) -> None:
    world = oworld_basic
    assert world.oci is not None
    world.publish_oci("risk", "1")
    world.release_to_prod("risk", "1")
    permitted = world.gate("risk@production")
    assert permitted.decision.permitted, permitted.decision.to_json()
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    world.oci_config = world.oci.config(password_file=wrong)
    denied = world.gate("risk@production")  # every layer cached: the evidence still is not
    assert codes(denied) == ["AUTH_FAILED"], denied.decision.to_json()


def test_manifest_deleted_from_the_oci_registry_is_not_found(oworld: OciWorld) -> None:
    rec = oworld.publish_oci("risk", "1")
    oworld.release_to_prod("risk", "1")
    assert oworld.oci is not None and rec.artifact_uri is not None
    ref = parse_artifact_uri(rec.artifact_uri)
    with OciTransport(oworld.oci.config()) as t:
        path = f"/v2/{ref.repository}/manifests/{ref.digest}"
        with t.open("DELETE", ref.host, path, scope=f"repository:{ref.repository}:delete"):
            pass
    result = oworld.gate("risk@production")
    assert codes(result) == ["NOT_FOUND"], result.decision.to_json()
