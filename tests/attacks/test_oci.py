"""Hostile OCI registries: small real HTTPS servers on 127.0.0.1 that lie on purpose.

Each attack ends in a TrustloadError with the right reason code, in bounded time, and
never hands unverified bytes to a parser.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.attacks.helpers import assert_load_refused
from tests.client.pki import CA
from tests.client.tlsserver import Handler, TLSServer
from trustload.config import OciConfig, OciRegistryConfig
from trustload.decision import ReasonCode
from trustload.errors import TrustloadError
from trustload.oci.cosign_sign import existing_layers
from trustload.oci.reader import MAX_SIGNATURE_LAYER_BYTES, Descriptor
from trustload.oci.registry import RegistryRepository
from trustload.oci.transport import OciTransport

DIGEST = "sha256:" + hashlib.sha256(b"the image").hexdigest()
REPO = "serving"


class Hostile:
    def __init__(self, ca: CA, name: str = "hostile") -> None:
        ident = ca.issue(name, server=True, hosts=("127.0.0.1", "127.0.0.2", "localhost"))
        self.server = TLSServer(ident.cert, ident.key, None)
        self.ca = ca

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def route(self, pattern: str, fn: Callable[[Handler], None]) -> None:
        self.server.route(pattern, fn)

    def entry(self, **over: object) -> OciRegistryConfig:
        values: dict[str, object] = {
            "host": self.host, "ca": self.ca.pem, "retries": 0,
            "slow_grace": 1.0, "read_timeout": 5.0,
        }  # fmt: skip
        values.update(over)
        return OciRegistryConfig(**values)  # type: ignore[arg-type]

    def repo(self, *extra: OciRegistryConfig, **over: object) -> RegistryRepository:
        cfg = OciConfig(registries=[self.entry(**over), *extra])
        return RegistryRepository(OciTransport(cfg, sleep=lambda s: None), self.host, REPO)


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path / "pki", "attack-ca")


@pytest.fixture
def hostile(ca: CA) -> Iterator[Hostile]:
    h = Hostile(ca)
    with h.server:
        yield h


def _refused(fn: Callable[[], object], bound: float = 15.0) -> TrustloadError:
    started = time.monotonic()
    with pytest.raises(TrustloadError) as info:
        fn()
    assert time.monotonic() - started < bound
    return info.value


def _send(h: Handler, body: bytes, status: int = 200, media: str = "application/json") -> None:
    h.send_response(status)
    h.send_header("Content-Type", media)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


def test_oci_manifest_not_matching_its_digest(hostile: Hostile) -> None:
    """The registry answers a manifest request by digest with other bytes.

    Attack: OCI registry / substitution
    """
    hostile.route(rf"/v2/{REPO}/manifests/.*", lambda h: _send(h, b'{"schemaVersion":2}'))
    exc = _refused(lambda: hostile.repo().manifest(DIGEST))
    assert_load_refused(exc, ReasonCode.DIGEST_MISMATCH)


def test_oci_huge_manifest(hostile: Hostile) -> None:
    """A 64 MiB "manifest" sent without Content-Length: refused at the 4 MiB bound.

    Attack: OCI registry / resource exhaustion
    """

    def endless(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(1024):
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass

    hostile.route(rf"/v2/{REPO}/manifests/.*", endless)
    exc = _refused(lambda: hostile.repo().manifest(DIGEST))
    assert_load_refused(exc, ReasonCode.DIGEST_MISMATCH)


def test_oci_huge_sig_manifest_by_tag(hostile: Hostile) -> None:
    """The `.sig` tag announces a 5 MiB manifest: signature evidence beyond its bound.

    Attack: OCI registry / resource exhaustion
    """
    big = b" " * (5 * 1024 * 1024)
    hostile.route(rf"/v2/{REPO}/manifests/sha256-.*", lambda h: _send(h, big))
    exc = _refused(lambda: hostile.repo().tagged_manifest(DIGEST.replace(":", "-") + ".sig"))
    assert_load_refused(exc, ReasonCode.IMAGE_SIGNATURE_INVALID)


def test_oci_huge_signature_layer_descriptor(hostile: Hostile) -> None:
    """A `.sig` layer descriptor claiming 2 GiB: refused before a byte is fetched.

    Attack: OCI registry / resource exhaustion
    """
    desc = Descriptor("application/vnd.dev.cosign.simplesigning.v1+json", DIGEST, 2 << 30)
    exc = _refused(lambda: hostile.repo().blob(desc, MAX_SIGNATURE_LAYER_BYTES))
    assert_load_refused(exc, ReasonCode.IMAGE_SIGNATURE_INVALID)
    assert not any("/blobs/" in path for _, path, _ in hostile.server.requests)


def test_oci_signature_layer_longer_than_its_descriptor(hostile: Hostile) -> None:
    """The blob answer carries 1 MiB where the descriptor says 200 bytes.

    Attack: OCI registry / resource exhaustion
    """
    hostile.route(rf"/v2/{REPO}/blobs/.*", lambda h: _send(h, b"y" * (1 << 20)))
    desc = Descriptor("application/vnd.dev.cosign.simplesigning.v1+json", DIGEST, 200)
    exc = _refused(lambda: hostile.repo().blob(desc, MAX_SIGNATURE_LAYER_BYTES))
    assert_load_refused(exc, ReasonCode.DIGEST_MISMATCH)


def test_oci_sig_manifest_with_ten_thousand_layers(hostile: Hostile) -> None:
    """A `.sig` manifest listing 10,000 layers: read within bounds, refused on use.

    Attack: OCI registry / resource exhaustion
    """
    layer = {
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "size": 10,
        "digest": DIGEST,
        "annotations": {"dev.cosignproject.cosign/signature": "AA=="},
    }
    raw = json.dumps({"schemaVersion": 2, "layers": [layer] * 10_000}).encode()
    hostile.route(rf"/v2/{REPO}/manifests/.*", lambda h: _send(h, raw))
    manifest = hostile.repo().tagged_manifest(DIGEST.replace(":", "-") + ".sig")
    assert manifest is not None and manifest.raw == raw  # the reader bounds bytes only
    exc = _refused(lambda: existing_layers(manifest.raw))  # sign-image will not append to it
    assert_load_refused(exc, ReasonCode.IMAGE_SIGNATURE_INVALID)


def test_oci_referrers_index_points_at_another_subject(hostile: Hostile) -> None:
    """The referrers answer lists a manifest whose `subject` is another image.

    The reader returns the descriptor and the manifest's exact bytes; the subject the
    manifest really names is there for the verifier to compare (an index can lie).
    """
    other = "sha256:" + "e" * 64
    manifest_type = "application/vnd.oci.image.manifest.v1+json"
    subject = {"digest": other, "size": 1, "mediaType": manifest_type}
    referrer = json.dumps({"schemaVersion": 2, "subject": subject, "layers": []}).encode()
    rdigest = "sha256:" + hashlib.sha256(referrer).hexdigest()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": rdigest,
        "size": len(referrer), "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
    }]}).encode()  # fmt: skip
    hostile.route(
        rf"/v2/{REPO}/referrers/.*",
        lambda h: _send(h, index, media="application/vnd.oci.image.index.v1+json"),
    )
    hostile.route(rf"/v2/{REPO}/manifests/{rdigest}", lambda h: _send(h, referrer))
    repo = hostile.repo()
    (found,) = repo.referrers(DIGEST)
    assert found.digest == rdigest
    assert json.loads(repo.manifest(found.digest).raw)["subject"]["digest"] == other


def test_oci_redirect_to_unlisted_host(hostile: Hostile, ca: CA) -> None:
    """A blob GET redirected to an https host not in `[[oci.registries]]`.

    Attack: OCI registry / redirect
    """
    elsewhere = Hostile(ca, "storage")
    with elsewhere.server:
        elsewhere.route(r".*", lambda h: _send(h, b"z"))
        target = f"https://127.0.0.1:{elsewhere.server.port}/blob"
        hostile.route(rf"/v2/{REPO}/blobs/.*", lambda h: h.redirect(target))
        desc = Descriptor("application/octet-stream", DIGEST, 1)
        exc = _refused(lambda: hostile.repo().blob(desc, 10))
        assert_load_refused(exc, ReasonCode.REGISTRY_NOT_ALLOWED)
        assert elsewhere.server.requests == []
        # The stated policy: the same redirect to a *listed* storage host is followed.
        blob = b"9"
        good = Descriptor(
            "application/octet-stream", "sha256:" + hashlib.sha256(blob).hexdigest(), 1
        )
        elsewhere.route(r".*", lambda h: _send(h, blob, media="application/octet-stream"))
        assert hostile.repo(elsewhere.entry()).blob(good, 10) == blob
        assert "Authorization" not in elsewhere.server.requests[-1][2]


def test_oci_redirect_to_plain_http(hostile: Hostile) -> None:
    """A blob GET redirected to plain http on a listed host.

    Attack: OCI registry / redirect
    """
    hostile.route(rf"/v2/{REPO}/blobs/.*", lambda h: h.redirect(f"http://{hostile.host}/x"))
    exc = _refused(lambda: hostile.repo().blob(Descriptor("x", DIGEST, 1), 10))
    assert_load_refused(exc, ReasonCode.REGISTRY_NOT_ALLOWED)


def _challenge(realm: str) -> Callable[[Handler], None]:
    def answer(h: Handler) -> None:
        h.send_response(401)
        h.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="svc",scope="x"')
        h.send_header("Content-Length", "0")
        h.end_headers()

    return answer


def test_oci_401_loop(hostile: Hostile) -> None:
    """The registry answers 401 to every request, even with the token it had us fetch.

    Attack: OCI registry / authentication loop
    """
    hostile.route(r"/v2/.*", _challenge(f"https://{hostile.host}/token"))
    hostile.route(r"/token.*", lambda h: _send(h, b'{"token":"abc.def.ghi"}'))
    exc = _refused(lambda: hostile.repo().manifest(DIGEST))
    assert_load_refused(exc, ReasonCode.AUTH_FAILED)
    assert len(hostile.server.requests) <= 3  # request, token, request again: then stop


def test_oci_token_realm_on_unlisted_host(hostile: Hostile) -> None:
    """The challenge sends us for a token to a host not in `[[oci.registries]]`.

    Attack: OCI registry / credential phishing
    """
    hostile.route(r"/v2/.*", _challenge("https://127.0.0.2:1/token"))
    exc = _refused(lambda: hostile.repo().manifest(DIGEST))
    assert_load_refused(exc, ReasonCode.REGISTRY_NOT_ALLOWED)


def test_oci_drip_feeding_registry(hostile: Hostile) -> None:
    """A blob answered one byte every 0.1 s: below the rate floor after the grace.

    Attack: OCI registry / slow retrieval
    """

    def drip(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        try:
            for _ in range(100000):
                h.wfile.write(b"d")
                h.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    hostile.route(rf"/v2/{REPO}/blobs/.*", drip)
    exc = _refused(lambda: hostile.repo().blob(Descriptor("x", DIGEST, 100000), 1 << 20), 10)
    assert_load_refused(exc, ReasonCode.REGISTRY_UNAVAILABLE)


def test_oci_drip_fed_headers(hostile: Hostile) -> None:
    """Status line and headers drip-fed one byte every 0.5 s, never tripping a read timeout.

    Attack: OCI registry / slow retrieval
    """

    def drip_head(h: Handler) -> None:
        head = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 10_000 + b"\r\n\r\n"
        try:
            for i in range(len(head)):
                h.wfile.write(head[i : i + 1])
                h.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass
        h.close_connection = True

    hostile.route(rf"/v2/{REPO}/manifests/.*", drip_head)
    repo = hostile.repo(read_timeout=1.0, connect_timeout=1.0)
    exc = _refused(lambda: repo.manifest(DIGEST), 6)
    assert_load_refused(exc, ReasonCode.REGISTRY_UNAVAILABLE)


def test_oci_host_not_allowlisted(hostile: Hostile) -> None:
    """A reference naming a registry not in `[[oci.registries]]`: nothing is sent.

    Attack: OCI registry / allowlist
    """
    transport = OciTransport(OciConfig(registries=[]))
    exc = _refused(lambda: RegistryRepository(transport, hostile.host, REPO).manifest(DIGEST))
    assert_load_refused(exc, ReasonCode.REGISTRY_NOT_ALLOWED)
    assert hostile.server.requests == []
