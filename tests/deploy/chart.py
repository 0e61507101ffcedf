"""What the deployment tests share: the real helm and promtool binaries, rendering the chart, and a
structural check of Kubernetes objects against the OpenAPI models of KServe's and Kubernetes'
Python clients.

No API server runs here, so nothing is applied: a rendered object is checked field by field
against the generated models (``kserve.models.V1beta1InferenceService``,
``kubernetes.client.V1Deployment``...), which carry every field name and type of the CRD or API
type they were generated from. An unknown field, a wrong type or a missing required field fails.
The Prometheus Operator's kinds (PodMonitor, PrometheusRule) have no such models; their rules
are checked by promtool instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kserve.models
import kubernetes.client.models
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "recsys"
MANIFESTS = REPO / "manifests"
REQUIRE = os.environ.get("RECSYS_REQUIRE_SERVICES") == "1"


def tool(name: str) -> str:
    """Path of a tool from scripts/install_tools.sh (.tools/bin) or PATH; skips the test when it is
    missing, fails it under RECSYS_REQUIRE_SERVICES=1 (CI)."""
    found = REPO / ".tools" / "bin" / name
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        message = f"{name} is not installed: run scripts/install_tools.sh"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    return path


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, check=check)


def render(*sets: str, release: str = "recsys", namespace: str = "recsys", values: Path | None = None) -> str:
    """``helm template`` of the chart with ``--set`` overrides: the YAML text."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    if values is not None:
        args += ["-f", str(values)]
    for s in sets:
        args += ["--set", s]
    return helm(*args).stdout


def objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} in {[(d['kind'], d['metadata']['name']) for d in docs]}")


MODEL_OF_KIND = {
    ("serving.kserve.io/v1beta1", "InferenceService"): kserve.models.V1beta1InferenceService,
    ("apps/v1", "Deployment"): kubernetes.client.models.V1Deployment,
    ("v1", "Service"): kubernetes.client.models.V1Service,
    ("v1", "ConfigMap"): kubernetes.client.models.V1ConfigMap,
    ("batch/v1", "Job"): kubernetes.client.models.V1Job,
    ("v1", "Secret"): kubernetes.client.models.V1Secret,
    ("networking.k8s.io/v1", "NetworkPolicy"): kubernetes.client.models.V1NetworkPolicy,
}
_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(([^,]+), (.+)\)$")
_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "float": (int, float),
    "object": (object,),
    "datetime": (str,),
    "date": (str,),
    "ResourceQuantity": (str, int, float),  # "500m", 2, 0.5
}


def _model(type_name: str) -> type | None:
    return getattr(kserve.models, type_name, None) or getattr(kubernetes.client.models, type_name, None)


def validate(value: Any, type_name: str, path: str = "") -> list[str]:
    """Problems of ``value`` as an instance of the OpenAPI type ``type_name`` (a model class name,
    ``list[X]``, ``dict(str, X)`` or a scalar), each naming the field's path."""
    if (m := _LIST.match(type_name)) is not None:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in validate(item, m.group(1), f"{path}[{i}]")]
    if (m := _DICT.match(type_name)) is not None:
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping, got {type(value).__name__}"]
        return [p for k, item in value.items() for p in validate(item, m.group(2), f"{path}.{k}")]
    if type_name in _SCALARS:
        ok = isinstance(value, _SCALARS[type_name]) and not (type_name == "int" and isinstance(value, bool))
        return [] if ok else [f"{path}: expected {type_name}, got {type(value).__name__} {value!r}"]
    model = _model(type_name)
    if model is None:
        return [f"{path}: no model for type {type_name}"]
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} mapping, got {type(value).__name__}"]
    by_json = {json_key: attr for attr, json_key in model.attribute_map.items()}
    problems = []
    for key, item in value.items():
        if key not in by_json:
            problems.append(f"{path}.{key}: not a field of {type_name}")
        elif item is not None:
            problems += validate(item, model.openapi_types[by_json[key]], f"{path}.{key}")
    for attr in _required(model):
        if model.attribute_map[attr] not in value:
            problems.append(f"{path}.{model.attribute_map[attr]}: required by {type_name}")
    return problems


def _required(model: type) -> list[str]:
    """The model's required fields: those its constructor refuses as None."""
    required = []
    for attr in model.openapi_types:
        setter = getattr(model, attr).fset
        source = setter.__code__.co_consts if setter else ()
        if any(
            isinstance(c, str) and c.startswith(f"Invalid value for `{attr}`, must not be `None`")
            for c in source
        ):
            required.append(attr)
    return required


def validate_object(doc: dict[str, Any]) -> list[str]:
    model = MODEL_OF_KIND.get((doc.get("apiVersion"), doc.get("kind")))
    if model is None:
        return []
    return validate(doc, model.__name__, f"{doc['kind']}/{doc['metadata']['name']}")
