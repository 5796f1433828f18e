"""A local OCI registry for the demo: Debian's ``docker-registry`` on 127.0.0.1 over TLS.

Dev tooling only (like :mod:`trustload.devenv`): it reuses the dev environment's CA and
Registry server certificate (issued for 127.0.0.1 / localhost), keeps its storage inside
the environment directory and is always stopped by its context manager. When the binary
is missing the demo says so in one line and installs it the way ``.ci/run`` does if it
can (root with apt-get), or skips its OCI steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REGISTRY_PACKAGE = "docker-registry"
START_TIMEOUT = 20.0


def registry_binary(say: Callable[[str], None]) -> str | None:
    """The ``docker-registry`` binary, installed first when root with apt can do it."""
    found = shutil.which("docker-registry")
    if found is not None:
        return found
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        say("docker-registry is missing (apt-get install -y docker-registry): OCI steps skipped")
        return None
    say("docker-registry is missing: installing it with apt-get, as .ci/run does")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["update", "-qq"], ["install", "-y", "-qq", REGISTRY_PACKAGE]):
        res = subprocess.run([apt, *args], env=env, capture_output=True, timeout=600)
        if res.returncode != 0:
            say("could not install docker-registry: OCI steps skipped")
            return None
    return shutil.which("docker-registry")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_tls(port: int, ca: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
                ctx.wrap_socket(raw, server_hostname="127.0.0.1"),
            ):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not come up: {log.read_text()[-2000:]}")


@contextmanager
def dev_oci_registry(binary: str, env_dir: Path) -> Iterator[str]:
    """Run ``docker-registry`` with the dev PKI; yield its ``host:port``."""
    root = env_dir / "oci-registry"
    storage = root / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    pki = env_dir / "pki"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage}}}}}\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        f"  secret: {uuid.uuid4().hex}\n"
        "  tls:\n"
        f"    certificate: {pki / 'registry.pem'}\n"
        f"    key: {pki / 'registry.key'}\n"
    )
    log = root / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_tls(port, pki / "ca.pem", proc, log)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def registries_toml(host: str, ca: str = "pki/ca.pem") -> str:
    """The ``[[oci.registries]]`` entry a dev config needs for this registry."""
    return f'\n[[oci.registries]]\nhost = "{host}"\nca = "{ca}"\n'


def push_serving_image(config: Path, host: str, repository: str) -> str:
    """Push a tiny stand-in for the serving image (config + one layer); return its digest."""
    from trustload.config import load_oci_config
    from trustload.oci.reference import RegistryRef
    from trustload.oci.registry import open_reader

    layer_bytes = b"trustload demo serving image: the runtime this pod is\n"
    image_config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()],
            },
        },
        sort_keys=True,
    ).encode()
    ref = RegistryRef(host, repository, "sha256:" + "0" * 64)
    with open_reader(ref, load_oci_config(config)) as repo:
        cfg = repo.push_bytes(image_config, "application/vnd.oci.image.config.v1+json")
        layer = repo.push_bytes(layer_bytes, "application/vnd.oci.image.layer.v1.tar")
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": cfg.media_type, "digest": cfg.digest, "size": cfg.size},
                "layers": [
                    {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
                ],
            },
            sort_keys=True,
        ).encode()
        return repo.push_manifest(manifest, "application/vnd.oci.image.manifest.v1+json", "v1")
