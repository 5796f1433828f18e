"""Validate KServe manifests strictly against the kserve package's generated models.

Runs under ``.venv-kserve`` (``make kserve-venv``): ``python kserve_schema.py FILE...``
prints ``{file: [error, ...]}`` as JSON. The schema source is the kserve 0.21 Python
package's OpenAPI-generated classes (``openapi_types`` + ``attribute_map``), recursing
into the ``kubernetes.client`` models for the embedded pod/container parts: an unknown
field is an error, a wrong JSON type is an error, and each object is finally built with
its class's constructor, whose client-side validation refuses missing required fields
and values outside an enum.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import kserve.models as kserve_models
import kubernetes.client.models as k8s_models
import yaml

KINDS = {
    ("serving.kserve.io/v1alpha1", "ClusterStorageContainer"): "V1alpha1ClusterStorageContainer",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "bytes": str}


class Invalid(Exception):
    pass


def _model(name: str) -> type:
    for module in (kserve_models, k8s_models):
        cls = getattr(module, name, None)
        if cls is not None:
            return cls
    raise Invalid(f"schema has no model {name}")


def check(value: Any, type_name: str, where: str) -> Any:
    """Return ``value`` converted to the generated model (raises Invalid)."""
    if type_name == "object":
        return value
    if type_name in PRIMITIVES:
        want = PRIMITIVES[type_name]
        if isinstance(value, bool) and type_name != "bool" or not isinstance(value, want):
            raise Invalid(f"{where}: expected {type_name}, got {type(value).__name__}")
        return value
    if m := re.fullmatch(r"[lL]ist\[(.+)\]", type_name):
        if not isinstance(value, list):
            raise Invalid(f"{where}: expected a list")
        return [check(v, m.group(1), f"{where}[{i}]") for i, v in enumerate(value)]
    if m := re.fullmatch(r"dict\(str, (.+)\)|Dict\[str, (.+)\]", type_name):
        if not isinstance(value, dict):
            raise Invalid(f"{where}: expected a map")
        inner = m.group(1) or m.group(2)
        return {str(k): check(v, inner, f"{where}.{k}") for k, v in value.items()}
    if type_name == "datetime":
        return value
    cls = _model(type_name)
    if not isinstance(value, dict):
        raise Invalid(f"{where}: expected an object ({type_name})")
    by_json = {j: p for p, j in cls.attribute_map.items()}
    kwargs = {}
    for key, item in value.items():
        if key not in by_json:
            raise Invalid(f"{where}: unknown field {key!r} in {type_name}")
        py = by_json[key]
        kwargs[py] = check(item, cls.openapi_types[py], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise Invalid(f"{where}: {type_name}: {exc}") from exc


def validate(doc: dict[str, Any]) -> None:
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in KINDS:
        raise Invalid(f"not a KServe kind this validator knows: {key}")
    check(doc, KINDS[key], doc["kind"])


def main(paths: list[str]) -> None:
    out: dict[str, list[str]] = {}
    for path in paths:
        errors = []
        with open(path) as fh:
            for i, doc in enumerate(d for d in yaml.safe_load_all(fh) if d):
                try:
                    validate(doc)
                except Invalid as exc:
                    errors.append(f"document {i}: {exc}")
        out[path] = errors
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
