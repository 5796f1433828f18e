"""Image signature fetch: trustload's OCI client vs the raw round trips, same run.

A tiny signed image is pushed to a real docker-registry (distribution 2.8) on 127.0.0.1
over TLS with htpasswd Basic auth, signed with ``trustload sign-image``. Then, warm
(connections and credentials established, measured ``--rounds`` times each, alternating):

* trustload: everything the cosign verifier reads through the ``OciReader`` for a key
  signature: the image manifest (digest-checked), the ``sha256-<hex>.sig`` manifest, each
  signature layer (hashed, bounded), plus the referrers lookup (cosign-3 bundles;
  distribution 2.8 answers 404, then the ``sha256-<hex>`` tag is tried);
* raw floor: httpx on one keep-alive connection, same TLS context and credentials:
  HEAD + GET of the manifest, GET of the ``.sig`` manifest, GET of the signature layer.

With ``--cli`` (the default once ``trustload verify-image`` exists): the whole command
as a subprocess vs ``curl`` doing the same four requests in one process (both pay
process start-up).
Prints medians and the ratio (target <= 1.5). Usage:
``python bench/image_verify.py [--rounds 200] [--cli]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.client.pki import CA  # noqa: E402
from tests.support.ocireg import make_image, oci_registry, push_image  # noqa: E402

from trustload.client.transport import build_ssl_context  # noqa: E402
from trustload.crypto.keys import generate_keypair  # noqa: E402
from trustload.decision import ReasonCode  # noqa: E402
from trustload.oci.cosign_sign import sign_image  # noqa: E402
from trustload.oci.reader import MAX_SIGNATURE_LAYER_BYTES, Descriptor  # noqa: E402
from trustload.oci.reference import RegistryRef  # noqa: E402
from trustload.oci.registry import MANIFEST_ACCEPT, RegistryRepository, descriptor_from  # noqa: E402
from trustload.oci.transport import OciTransport  # noqa: E402


def trustload_fetch(repo: RegistryRepository, digest: str) -> int:
    repo.manifest(digest)
    sig = repo.tagged_manifest(digest.replace(":", "-") + ".sig")
    assert sig is not None
    n = 0
    for layer in json.loads(sig.raw)["layers"]:
        desc = descriptor_from(layer, code=ReasonCode.IMAGE_SIGNATURE_INVALID, what="bench")
        n += len(repo.blob(desc, MAX_SIGNATURE_LAYER_BYTES))
    repo.referrers(digest)
    return n


def raw_fetch(client: object, base: str, digest: str, layer: Descriptor) -> None:
    import httpx

    assert isinstance(client, httpx.Client)
    accept = {"Accept": MANIFEST_ACCEPT}
    client.head(f"{base}/manifests/{digest}", headers=accept).raise_for_status()
    client.get(f"{base}/manifests/{digest}", headers=accept).raise_for_status()
    tag = digest.replace(":", "-") + ".sig"
    client.get(f"{base}/manifests/{tag}", headers=accept).raise_for_status()
    client.get(f"{base}/blobs/{layer.digest}").raise_for_status()


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--cli", action="store_true")
    args = parser.parse_args()
    import httpx

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ca = CA(tmp / "pki", "bench-ca")
        with oci_registry(tmp / "reg", ca, auth="basic") as reg:
            cfg = reg.config()
            repo = RegistryRepository(OciTransport(cfg), reg.host, "serving")
            image = make_image()
            push_image(repo, image)
            priv, pub = generate_keypair(tmp / "signer")
            sign_image(repo, RegistryRef(reg.host, "serving", image.digest), priv)
            sig = repo.tagged_manifest(image.digest.replace(":", "-") + ".sig")
            assert sig is not None
            layer_doc = json.loads(sig.raw)["layers"][0]
            layer = Descriptor(layer_doc["mediaType"], layer_doc["digest"], layer_doc["size"])

            assert reg.password_file is not None and reg.username is not None
            password = reg.password_file.read_text().strip()
            basic = base64.b64encode(f"{reg.username}:{password}".encode()).decode()
            raw = httpx.Client(
                verify=build_ssl_context(reg.ca, None, None),
                trust_env=False,
                headers={"Authorization": f"Basic {basic}"},
            )
            base = f"https://{reg.host}/v2/serving"
            trustload_fetch(repo, image.digest)  # warm both
            raw_fetch(raw, base, image.digest, layer)
            ours: list[float] = []
            floor: list[float] = []
            for i in range(args.rounds):
                order = (0, 1) if i % 2 == 0 else (1, 0)
                for side in order:
                    start = time.perf_counter()
                    if side == 0:
                        trustload_fetch(repo, image.digest)
                        ours.append(time.perf_counter() - start)
                    else:
                        raw_fetch(raw, base, image.digest, layer)
                        floor.append(time.perf_counter() - start)
            before = repo.transport.requests_sent
            trustload_fetch(repo, image.digest)
            sent = repo.transport.requests_sent - before
            print(f"{len(ours)} rounds each, warm, in-process; trustload sends {sent} requests")
            print(f"trustload fetch (manifest, .sig, layer, referrers): {median_ms(ours):.2f} ms")
            print(f"raw floor (HEAD+GET manifest, GET .sig, GET layer): {median_ms(floor):.2f} ms")
            print(f"ratio trustload / raw floor: {median_ms(ours) / median_ms(floor):.2f}")
            from importlib.util import find_spec

            if args.cli or find_spec("trustload.image") is not None:  # verify-image is here
                cli_bench(
                    reg, tmp, image.digest, pub, layer, basic, rounds=max(3, args.rounds // 40)
                )


def cli_bench(reg: object, tmp: Path, digest: str, pub: Path, layer: Descriptor, basic: str,
              rounds: int) -> None:  # fmt: skip
    from tests.support.ocireg import RunningOciRegistry

    assert isinstance(reg, RunningOciRegistry)
    config = reg.toml(tmp / "oci.toml")
    ref = f"{reg.host}/serving@{digest}"
    trustload = [sys.executable, "-m", "trustload.cli.main", "verify-image", ref,
                 "--key", str(pub), "--config", str(config), "--json"]  # fmt: skip
    curl = shutil.which("curl")
    if curl is None:
        print("curl missing: CLI comparison skipped")
        return
    base = f"https://{reg.host}/v2/serving"
    tag = digest.replace(":", "-") + ".sig"
    common = ["--cacert", str(reg.ca), "-H", f"Authorization: Basic {basic}", "-H",
              f"Accept: {MANIFEST_ACCEPT}", "-o", "/dev/null"]  # fmt: skip
    curl_cmd = [curl, "-sf", "-I", *common, f"{base}/manifests/{digest}",
                "--next", "-sf", *common, f"{base}/manifests/{digest}",
                "--next", "-sf", *common, f"{base}/manifests/{tag}",
                "--next", "-sfL", *common, f"{base}/blobs/{layer.digest}"]  # fmt: skip
    ours: list[float] = []
    floor: list[float] = []
    python_start: list[float] = []
    startup: list[float] = []
    help_cmd = [sys.executable, "-m", "trustload.cli.main", "--help"]
    for _ in range(rounds):
        for cmd, out in ((trustload, ours), (curl_cmd, floor),
                         ([sys.executable, "-c", "pass"], python_start),
                         (help_cmd, startup)):  # fmt: skip
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            out.append(time.perf_counter() - start)
            if done.returncode != 0:
                print(f"failed: {cmd[:4]}: {done.stderr[-500:]}")
                return
    t, c, p = median_ms(ours), median_ms(floor), median_ms(python_start)
    h = median_ms(startup)
    print(f"CLI: trustload verify-image {t:.0f} ms; curl (4 requests) {c:.0f} ms")
    print(f"start-up: bare python {p:.0f} ms; `trustload --help` (typer, rich) {h:.0f} ms")
    print(f"CLI ratio trustload / (curl + bare python): {t / (c + p):.2f}")
    print(f"CLI ratio (trustload - its start-up) / curl: {(t - h) / c:.2f}")


if __name__ == "__main__":
    main()
