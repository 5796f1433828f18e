"""The Kubernetes manifests validate against the shipped schemas and carry every R6 control."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from trustload.config import load_client_config

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
K8S_VERSION = "1.30.0"


def _docs() -> list[dict[str, Any]]:
    out = []
    for path in sorted(ROOT.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return out


def _one(kind: str) -> dict[str, Any]:
    found = [d for d in _docs() if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


@pytest.mark.parametrize("doc", _docs(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_schema_valid_strict(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_schema_validation_catches_a_typo() -> None:
    bad = _one("Deployment")
    bad = {**bad, "spec": {**bad["spec"], "replicaz": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_deployment_hardening() -> None:
    dep = _one("Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["appArmorProfile"]["type"] == "RuntimeDefault"
    assert "@sha256:" in c["image"]  # pinned by digest
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert not any("secretKeyRef" in str(e) for e in c.get("env", []))  # no static secrets in env


def test_volumes_token_mtls_emptydir() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in pod["volumes"]}
    token = vols["oidc-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "trustload-registry" and token["expirationSeconds"] <= 3600
    assert "secret" in vols["mtls"] and vols["mtls"]["secret"]["secretName"]
    for name in ("cache", "state", "audit", "tmp"):
        assert "emptyDir" in vols[name]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    for name in ("config", "policy", "keys", "mtls", "oidc-token"):
        assert mounts[name]["readOnly"] is True


def test_configmap_gate_toml_matches_mounts(tmp_path: Path) -> None:
    cm = _one("ConfigMap")
    path = tmp_path / "gate.toml"
    path.write_text(cm["data"]["gate.toml"])
    cfg = load_client_config(path)  # strict: unknown keys would be refused
    pod = _one("Deployment")["spec"]["template"]["spec"]
    mounts = [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]]
    assert str(cfg.registry.token_file).startswith("/var/run/secrets/trustload/oidc")
    for p in (
        cfg.registry.token_file,
        cfg.registry.client_cert,
        cfg.registry.ca,
        cfg.gate.cache_dir,
        cfg.gate.state_dir,
        cfg.gate.audit_log,
        cfg.gate.policy_dir,
    ):
        assert any(str(p).startswith(m) for m in mounts), p
    assert cfg.registry.url.startswith("https://") and cfg.registry.allowlist == [cfg.registry.url]
    assert cfg.gate.environment == "prod" and cfg.gate.allow_pickle is False
    assert cfg.serve.model and "@" in cfg.serve.model


def test_networkpolicy_egress_only_registry_dns_observability() -> None:
    np_ = _one("NetworkPolicy")
    spec = np_["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    targets = []
    for rule in spec["egress"]:
        assert rule.get("to"), "an egress rule without 'to' would open all destinations"
        for peer in rule["to"]:
            assert "ipBlock" not in peer  # no CIDR (internet) egress
            targets.append(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
        assert rule.get("ports")
    assert sorted(targets) == ["kube-system", "observability", "trustload-registry"]
    ports = {(p["protocol"], p["port"]) for r in spec["egress"] for p in r["ports"]}
    assert ("TCP", 8443) in ports and ("UDP", 53) in ports
