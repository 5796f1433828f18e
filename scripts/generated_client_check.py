"""Generate a Python client from the live Registry's /openapi.json with a third-party
generator (openapi-python-client) and drive a whole publish -> approve -> alias -> resolve
-> download flow with it, plus documented errors, over mTLS.

Why: "the served document is the contract" is only true if a client built from nothing
but the document works. The generated client is strict (``raise_on_unexpected_status``):
any status the document does not list, or a body that does not parse into the declared
model, fails the check. Called by scripts/api_fuzz.py (``make api-fuzz``).
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGE = "trustload_registry_client"


def generate(url: str, ssl_context: Any, dest: Path) -> Any:
    """Fetch the document over mTLS, generate the client package under ``dest``, import it."""
    import httpx

    with httpx.Client(verify=ssl_context) as c:
        doc = c.get(f"{url}/openapi.json")
    doc.raise_for_status()
    spec = dest / "openapi.json"
    spec.write_bytes(doc.content)
    config = dest / "generator.yaml"
    config.write_text("post_hooks: []\n")
    tool = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    if tool is None:
        raise SystemExit("openapi-python-client is not installed (pip install -e '.[apifuzz]')")
    subprocess.run(
        [tool, "generate", "--path", str(spec), "--meta", "none", "--config", str(config),
         "--output-path", str(dest / PACKAGE)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    sys.path.insert(0, str(dest))
    return importlib.import_module(PACKAGE)


def check(env: Any, url: str, dest: Path) -> None:
    """Raise AssertionError (or the client's UnexpectedStatus) on any contract breach."""
    pkg = generate(url, env.ssl_context("admin"), dest)
    api = importlib.import_module(f"{PACKAGE}.api.default")
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")

    def client(role: str, cert: str) -> Any:
        return pkg.AuthenticatedClient(
            base_url=url,
            token=env.token(role=role),
            verify_ssl=env.ssl_context(cert),
            raise_on_unexpected_status=True,
        )

    admin, consumer = client("admin", "admin"), client("consumer", "gate")
    anonymous = pkg.Client(base_url=url, verify_ssl=env.ssl_context("gate"))
    mod = importlib.import_module
    health = mod(f"{PACKAGE}.api.default.healthz").sync(client=anonymous)
    assert health.status == "ok", health

    data = b"bytes published through a generated client"
    hexdigest = hashlib.sha256(data).hexdigest()
    up = mod(f"{api.__name__}.upload_blob").sync_detailed(
        hexdigest, client=admin, body=types.File(payload=data)
    )
    assert up.status_code in (200, 201) and up.parsed.digest == f"sha256:{hexdigest}", up
    body = models.PublishBody.from_dict(
        {
            "version": "1",
            "artifact_digest": f"sha256:{hexdigest}",
            "artifact_size": len(data),
            "kind": "file",
            "files": [{"path": "model.onnx", "sha256": hexdigest, "size": len(data)}],
            "policy_digest": "sha256:" + "ab" * 32,
            "git_sha": "0" * 40,
            "container_digest": "sha256:" + "cd" * 32,
            "dataset_snapshot": "ds",
            "card": {"tenant_id": "A", "domain": "credit"},
        }
    )
    name = "generated-client"
    rec = mod(f"{api.__name__}.publish_version").sync_detailed(name, client=admin, body=body)
    assert rec.status_code == 201, (rec.status_code, rec.content[:300])
    assert rec.parsed.stage.value == "Staging" and rec.parsed.card.additional_properties
    staged = mod(f"{api.__name__}.set_stage").sync(
        name, "1", client=admin, body=models.StageBody(stage=models.StageBodyStage("Approved"))
    )
    assert staged.stage.value == "Approved", staged
    alias = mod(f"{api.__name__}.set_alias").sync(
        name, "production", client=admin, body=models.AliasBody(version="1")
    )
    assert (alias.alias, alias.version, alias.revision) == ("production", "1", 1), alias
    resolved = mod(f"{api.__name__}.resolve_ref").sync(name, "production", client=consumer)
    assert (resolved.version, resolved.alias, resolved.files[0].sha256) == (
        "1",
        "production",
        hexdigest,
    )
    blob = mod(f"{api.__name__}.get_blob").sync_detailed(hexdigest, client=consumer)
    assert blob.status_code == 200 and blob.content == data, blob.status_code
    head = mod(f"{api.__name__}.head_blob").sync_detailed(hexdigest, client=consumer)
    assert head.status_code == 200 and head.headers["etag"] == f'"sha256:{hexdigest}"'

    # Documented errors come back as the declared Error model, with the real codes.
    missing = mod(f"{api.__name__}.get_version").sync(name, "99", client=consumer)
    assert isinstance(missing, models.Error) and missing.error.code.value == "NOT_FOUND"
    denied = mod(f"{api.__name__}.set_stage").sync(
        name, "1", client=consumer, body=models.StageBody(stage=models.StageBodyStage("Archived"))
    )
    assert isinstance(denied, models.Error) and denied.error.code.value == "FORBIDDEN"
    bad = mod(f"{api.__name__}.get_governance_log").sync_detailed(
        client=admin, after=2**63, limit=1
    )
    assert bad.status_code == 400 and bad.parsed.error.code.value == "BAD_REQUEST", bad
    log = mod(f"{api.__name__}.get_governance_log").sync(client=admin, model=name, limit=10)
    actions = [e.action for e in log.events]
    assert actions[:4] == ["publish", "stage", "alias", "denied"], actions
