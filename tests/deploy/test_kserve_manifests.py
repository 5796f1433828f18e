"""deploy/kserve validates against KServe's schemas and carries the R6 hardening.

Schema source: the kserve 0.21.0 Python package's OpenAPI-generated model classes
(``openapi_types`` + ``attribute_map``, recursing into kubernetes 37's ``kubernetes.client``
models for pod and container parts), walked strictly by tests/deploy/kserve_schema.py
inside ``.venv-kserve`` (kserve would downgrade protobuf in the dev venv). The embedded
core parts (container, volumes, pod security context) and the ConfigMaps are also
validated with kubernetes_validate, as deploy/kubernetes is.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from trustload.config import load_client_config

ROOT = Path(__file__).resolve().parents[2]
KSERVE = ROOT / "deploy" / "kserve"
KSERVE_PYTHON = ROOT / ".venv-kserve" / "bin" / "python"
VALIDATOR = Path(__file__).with_name("kserve_schema.py")
K8S_VERSION = "1.30.0"
CRDS = ["clusterstoragecontainer", "inferenceservice", "inferenceservice-serve", "servingruntime"]


def _load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((KSERVE / f"{name}.yaml").read_text())
    return doc


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return doc


_DELETE = object()
BROKEN = {
    "csc-typo": (
        "clusterstoragecontainer",
        "spec.container.securityContext.readOnlyRootFileSystem",
        True,
    ),
    "csc-wrong-type": (
        "clusterstoragecontainer",
        "spec.container.securityContext.runAsUser",
        "1000",
    ),
    "csc-no-container-name": ("clusterstoragecontainer", "spec.container.name", _DELETE),
    "csc-uri-typo": ("clusterstoragecontainer", "spec.supportedUriFormats.0.prefx", "trustload://"),
    "isvc-typo": ("inferenceservice", "spec.predictor.model.storageURI", "trustload://a@1"),
    "isvc-volume-typo": ("inferenceservice", "spec.predictor.volumes.1.emptydir", {}),
    "sr-wrong-type": ("servingruntime", "spec.containers.0.ports.0.containerPort", "8080"),
    "sr-typo": ("servingruntime", "spec.multimodel", False),
}


@pytest.fixture(scope="module")
def kserve_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    if not KSERVE_PYTHON.exists():
        if os.environ.get("TRUSTLOAD_REQUIRE_KSERVE"):
            pytest.fail("TRUSTLOAD_REQUIRE_KSERVE is set but .venv-kserve is missing")
        pytest.skip("no .venv-kserve: run `make kserve-venv` (kserve would downgrade protobuf)")
    work = tmp_path_factory.mktemp("kserve-schema")
    files = {name: str(KSERVE / f"{name}.yaml") for name in CRDS}
    for label, (name, path, value) in BROKEN.items():
        target = work / f"{label}.yaml"
        target.write_text(yaml.safe_dump(_set(_load(name), path, value)))
        files[label] = str(target)
    proc = subprocess.run(
        [str(KSERVE_PYTHON), str(VALIDATOR), *files.values()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    by_path = json.loads(proc.stdout)
    return {label: by_path[path] for label, path in files.items()}


@pytest.mark.parametrize("name", CRDS)
def test_manifest_validates_against_kserve_models(
    kserve_results: dict[str, list[str]], name: str
) -> None:
    assert kserve_results[name] == []


@pytest.mark.parametrize("label", sorted(BROKEN))
def test_kserve_validator_catches_the_mistake(
    kserve_results: dict[str, list[str]], label: str
) -> None:
    errors = kserve_results[label]
    assert errors, f"{label} was accepted"
    _name, path, value = BROKEN[label]
    leaf = path.rsplit(".", 1)[1]
    if value is _DELETE:
        assert any("name" in e for e in errors), errors
    else:
        assert any(leaf in e for e in errors), errors


def _pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_embedded_core_parts_validate_with_kubernetes_validate() -> None:
    csc = _load("clusterstoragecontainer")["spec"]["container"]
    isvc = _load("inferenceservice")["spec"]["predictor"]
    sr = _load("servingruntime")["spec"]
    pods = [
        _pod(
            "init",
            {
                "securityContext": isvc["securityContext"],
                "initContainers": [csc],
                "containers": [{"name": "kserve-container", "image": "x@sha256:" + "0" * 64}],
                "volumes": isvc["volumes"],
            },
        ),
        _pod("runtime", {"containers": sr["containers"], "volumes": sr["volumes"]}),
    ]
    for pod in pods:
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    for doc in yaml.safe_load_all((KSERVE / "configmap.yaml").read_text()):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    bad = copy.deepcopy(pods[0])
    bad["spec"]["initContainers"][0]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def _assert_hardened(sc: dict[str, Any]) -> None:
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["appArmorProfile"]["type"] == "RuntimeDefault"


def test_storage_container_contract_and_hardening() -> None:
    csc = _load("clusterstoragecontainer")
    spec = csc["spec"]
    assert spec["supportedUriFormats"] == [{"prefix": "trustload://"}]
    assert spec["workloadType"] == "initContainer"
    c = spec["container"]
    assert c["name"] == "storage-initializer"
    assert "@sha256:" in c["image"]
    assert c["command"] == ["trustload", "fetch"] and "args" not in c  # KServe appends pairs
    _assert_hardened(c["securityContext"])
    env = {e["name"]: e for e in c["env"]}
    assert env["TRUSTLOAD_CONFIG"]["value"] == "/etc/trustload/gate.toml"
    assert not any("valueFrom" in e for e in c["env"])  # nothing secret in env
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["trustload-config"]["readOnly"] is True
    assert "readOnly" not in mounts["trustload-var"]  # the one writable volume besides DEST


def test_inferenceservice_provides_the_initializer_volumes() -> None:
    csc = _load("clusterstoragecontainer")["spec"]["container"]
    pred = _load("inferenceservice")["spec"]["predictor"]
    assert pred["model"]["storageUri"].startswith("trustload://")
    assert pred["automountServiceAccountToken"] is False
    assert pred["securityContext"]["runAsNonRoot"] is True
    vols = {v["name"]: v for v in pred["volumes"]}
    assert {m["name"] for m in csc["volumeMounts"]} <= set(vols)
    sources = vols["trustload-config"]["projected"]["sources"]
    token = next(s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s)
    assert token["audience"] == "trustload-registry" and token["expirationSeconds"] <= 3600
    assert any("secret" in s for s in sources)
    assert "emptyDir" in vols["trustload-var"]


def _projected_paths(volume: dict[str, Any]) -> set[str]:
    out = set()
    for src in volume["projected"]["sources"]:
        for kind in ("configMap", "secret"):
            out |= {f"/etc/trustload/{i['path']}" for i in src.get(kind, {}).get("items", [])}
        if "serviceAccountToken" in src:
            out.add(f"/etc/trustload/{src['serviceAccountToken']['path']}")
    return out


@pytest.mark.parametrize("index", [0, 1])
def test_gate_toml_matches_the_mounted_files(tmp_path: Path, index: int) -> None:
    doc = list(yaml.safe_load_all((KSERVE / "configmap.yaml").read_text()))[index]
    path = tmp_path / "gate.toml"
    path.write_text(doc["data"]["gate.toml"])
    cfg = load_client_config(path)  # strict: unknown keys refused
    if index == 0:
        volume = _load("inferenceservice")["spec"]["predictor"]["volumes"][0]
    else:
        volume = _load("servingruntime")["spec"]["volumes"][0]
        assert cfg.serve.model and cfg.serve.listen.endswith(":8080")
    files = _projected_paths(volume)
    for p in (
        cfg.registry.token_file,
        cfg.registry.ca,
        cfg.registry.client_cert,
        cfg.registry.client_key,
        *cfg.gate.trusted_keys,
    ):
        assert str(p) in files, p
    assert any(f.startswith(f"{cfg.gate.policy_dir}/") for f in files)
    for p in (cfg.gate.state_dir, cfg.gate.audit_log):
        assert str(p).startswith("/var/lib/trustload/")  # the writable emptyDir
    assert cfg.gate.environment == "prod" and cfg.gate.allow_pickle is False


def test_servingruntime_runs_trustload_serve_hardened() -> None:
    sr = _load("servingruntime")["spec"]
    (c,) = sr["containers"]
    assert c["name"] == "kserve-container" and c["args"][0] == "serve"
    assert "@sha256:" in c["image"]
    _assert_hardened(c["securityContext"])
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert sr["protocolVersions"] == ["v2"]
    isvc = _load("inferenceservice-serve")["spec"]["predictor"]["model"]
    assert isvc["runtime"] == _load("servingruntime")["metadata"]["name"]
    assert "storageUri" not in isvc  # the runtime gates the model itself
