"""The OCI distribution client against a real docker-registry (distribution 2.8) over TLS."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.support.ocireg import RunningOciRegistry, make_image, push_image
from trustload.config import OciConfig
from trustload.decision import ReasonCode
from trustload.errors import TrustloadError
from trustload.oci.reader import Descriptor
from trustload.oci.registry import RegistryRepository
from trustload.oci.transport import OciTransport


def _repo(reg: RunningOciRegistry, name: str = "serving", **over: object) -> RegistryRepository:
    return RegistryRepository(OciTransport(reg.config(**over)), reg.host, name)


def _roundtrip(reg: RunningOciRegistry) -> None:
    repo = _repo(reg)
    repo.probe()
    image = make_image()
    assert push_image(repo, image) == image.digest
    got = repo.manifest(image.digest)
    assert got.raw == image.manifest and got.media_type.endswith("manifest.v1+json")
    head = repo.head_manifest("v1")
    assert head is not None and head.digest == image.digest and head.size == len(image.manifest)
    layer = json.loads(image.manifest)["layers"][0]
    desc = Descriptor(layer["mediaType"], layer["digest"], layer["size"])
    assert repo.blob(desc, 1 << 20) == image.layer
    assert repo.tagged_manifest("nope") is None
    assert repo.head_manifest("sha256-" + "0" * 64 + ".sig") is None
    tagged = repo.tagged_manifest("v1")
    assert tagged is not None and tagged.digest == image.digest


def test_no_auth_roundtrip(ocireg: RunningOciRegistry) -> None:
    _roundtrip(ocireg)


def test_basic_auth_roundtrip(ocireg_basic: RunningOciRegistry) -> None:
    _roundtrip(ocireg_basic)


def test_bearer_token_flow_roundtrip(ocireg_token: RunningOciRegistry) -> None:
    _roundtrip(ocireg_token)
    assert ocireg_token.token_server is not None and ocireg_token.token_server.issued >= 2


def test_basic_wrong_password_is_auth_failed(
    ocireg_basic: RunningOciRegistry, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    repo = _repo(ocireg_basic, password_file=wrong)
    with pytest.raises(TrustloadError) as info:
        repo.probe()
    assert info.value.code is ReasonCode.AUTH_FAILED


def test_basic_without_credentials_is_auth_failed(ocireg_basic: RunningOciRegistry) -> None:
    repo = _repo(ocireg_basic, username=None, password_file=None)
    with pytest.raises(TrustloadError) as info:
        repo.manifest("sha256:" + "a" * 64)
    assert info.value.code is ReasonCode.AUTH_FAILED


def test_token_server_refusing_is_auth_failed(ocireg_token: RunningOciRegistry) -> None:
    assert ocireg_token.token_server is not None
    ocireg_token.token_server.refuse_all = True
    with pytest.raises(TrustloadError) as info:
        _repo(ocireg_token).probe()
    assert info.value.code is ReasonCode.AUTH_FAILED


def test_host_not_listed_is_registry_not_allowed(ocireg: RunningOciRegistry) -> None:
    transport = OciTransport(OciConfig())
    with pytest.raises(TrustloadError) as info:
        RegistryRepository(transport, ocireg.host, "serving").probe()
    assert info.value.code is ReasonCode.REGISTRY_NOT_ALLOWED


def test_wrong_ca_is_tls_policy(ocireg: RunningOciRegistry, tmp_path: Path) -> None:
    from tests.client.pki import CA

    other = CA(tmp_path / "other-pki", "other-ca")
    with pytest.raises(TrustloadError) as info:
        _repo(ocireg, ca=other.pem).probe()
    assert info.value.code is ReasonCode.TLS_POLICY


def test_unreachable_is_registry_unavailable(ocireg: RunningOciRegistry) -> None:
    from tests.support.ocireg import free_port

    cfg = ocireg.config(host=f"127.0.0.1:{free_port()}", retries=1)
    host = cfg.registries[0].host
    with pytest.raises(TrustloadError) as info:
        RegistryRepository(OciTransport(cfg, sleep=lambda s: None), host, "x").probe()
    assert info.value.code is ReasonCode.REGISTRY_UNAVAILABLE


def test_missing_manifest_is_not_found(ocireg: RunningOciRegistry) -> None:
    with pytest.raises(TrustloadError) as info:
        _repo(ocireg).manifest("sha256:" + "b" * 64)
    assert info.value.code is ReasonCode.NOT_FOUND


@pytest.mark.parametrize("fixture", ["ocireg", "ocireg_token"])
def test_streamed_file_upload_hashed_once(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 12_000  # ~3 MiB, several upload chunks
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    repo = _repo(request.getfixturevalue(fixture))
    desc = repo.push_file(path)
    assert desc.digest == "sha256:" + hashlib.sha256(data).hexdigest() and desc.size == len(data)
    assert repo.blob_exists(desc.digest)
    out = tmp_path / "back.bin"
    with out.open("wb") as fh:
        assert repo.blob_into(desc, fh) == len(data)
    assert out.read_bytes() == data


def test_referrers_fallback_tag_schema(ocireg: RunningOciRegistry) -> None:
    """distribution 2.8 has no referrers API: the ``sha256-<hex>`` tag index is read."""
    repo = _repo(ocireg)
    image = make_image(b"subject\n")
    push_image(repo, image)
    assert repo.referrers(image.digest) == []
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": image.digest,
                    "size": len(image.manifest),
                    "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                }
            ],
        }
    ).encode()
    repo.push_manifest(
        index, "application/vnd.oci.image.index.v1+json", "sha256-" + image.digest[7:]
    )
    sent = repo.transport.requests_sent
    found = repo.referrers(image.digest)
    assert [d.artifact_type for d in found] == ["application/vnd.dev.sigstore.bundle.v0.3+json"]
    assert repo.transport.requests_sent == sent + 1  # the API's 404 was remembered


def test_mtls_registry(tmp_path: Path, oci_ca: object) -> None:
    """A registry requiring client certificates: ours is presented; none is AUTH_FAILED."""
    from tests.support.ocireg import oci_registry

    with oci_registry(tmp_path / "mtls", oci_ca, mtls=True, name="mtls") as reg:  # type: ignore[arg-type]
        _roundtrip(reg)
        with pytest.raises(TrustloadError) as info:
            _repo(reg, client_cert=None, client_key=None, retries=0).probe()
        assert info.value.code is ReasonCode.AUTH_FAILED


def test_bounded_retries_on_503(tmp_path: Path, oci_ca: object) -> None:
    """GETs are retried (bounded) on 503; a registry that stays 503 is REGISTRY_UNAVAILABLE."""
    from tests.client.pki import CA
    from tests.client.tlsserver import Handler, TLSServer
    from trustload.config import OciRegistryConfig

    assert isinstance(oci_ca, CA)
    ident = oci_ca.issue("flaky", server=True)
    answers = [503, 503, 200]

    def flaky(h: Handler) -> None:
        status = answers.pop(0) if answers else 503
        h.send_response(status)
        h.send_header("Content-Length", "0")
        h.end_headers()

    with TLSServer(ident.cert, ident.key, None, [(r"/v2/", flaky)]) as srv:
        host = f"127.0.0.1:{srv.port}"
        cfg = OciConfig(registries=[OciRegistryConfig(host=host, ca=oci_ca.pem, retries=2)])
        slept: list[float] = []
        repo = RegistryRepository(OciTransport(cfg, sleep=slept.append), host, "x")
        repo.probe()  # two 503s, then 200
        assert len(slept) == 2
        with pytest.raises(TrustloadError) as info:
            repo.probe()  # 503 three times: gives up after retries + 1 attempts
        assert info.value.code is ReasonCode.REGISTRY_UNAVAILABLE
        assert len(srv.requests) == 6


def test_basic_credentials_sent_for_every_scope_after_one_challenge(
    ocireg_basic: RunningOciRegistry,
) -> None:
    repo = _repo(ocireg_basic)
    repo.probe()  # 401, then Basic
    sent = repo.transport.requests_sent
    assert repo.tagged_manifest("absent") is None  # another scope: no second challenge
    assert repo.transport.requests_sent == sent + 1


def test_repository_name_is_checked(ocireg: RunningOciRegistry) -> None:
    from trustload.errors import UsageError

    with pytest.raises(UsageError):
        _repo(ocireg, "../../v2/other")
