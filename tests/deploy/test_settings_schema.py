"""The chart's values and the servers' settings (inference/settings.py) kept in step: every field
of both settings models is either set from a chart value (``VALUES``) or chosen by the chart
itself (``CHART_CHOICES``, with the reason); each value's schema says what its field accepts;
and a value set in helm arrives in the server's own settings object, parsed by the server."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, get_args

import pytest
import yaml

from inference.auth import AuthSettings
from inference.settings import PredictorSettings, TransformerSettings
from tests.deploy.chart import CHART, REPO, find, objects, render
from tests.deploy.test_chart import container, pod_env

# values path -> (server: transformer | predictor | both, settings field; auth.* for the edge)
VALUES: dict[str, tuple[str, str]] = {
    "transformer.timeoutsMs.store": ("transformer", "store_timeout_ms"),
    "transformer.timeoutsMs.channel": ("transformer", "channel_timeout_ms"),
    "transformer.timeoutsMs.predictor": ("transformer", "predictor_timeout_ms"),
    "transformer.timeoutsMs.request": ("transformer", "request_timeout_ms"),
    "transformer.candidates": ("transformer", "candidates"),
    "transformer.categoryCap": ("transformer", "category_cap"),
    "transformer.chainThreads": ("transformer", "chain_threads"),
    "transformer.recallThreads": ("transformer", "recall_threads"),
    "transformer.itemCacheSize": ("transformer", "item_cache_size"),
    "transformer.balancedAccept": ("transformer", "balanced_accept"),
    "shadow.sampleRate": ("transformer", "shadow_sample_rate"),
    "shadow.maxInFlight": ("transformer", "shadow_max_in_flight"),
    "model.registry.pollSeconds": ("both", "poll_seconds"),
    "model.runtime": ("predictor", "runtime"),
    "predictor.scoringThreads": ("predictor", "scoring_threads"),
    "serving.maxRequestBytes": ("both", "max_request_bytes"),
    "serving.bodyTimeoutSeconds": ("both", "body_timeout_s"),
    "serving.headerTimeoutSeconds": ("both", "header_timeout_s"),
    "serving.maxConnections": ("both", "max_connections"),
    "serving.requestLogs": ("both", "request_logs"),
    "auth.enabled": ("both", "auth.enabled"),
    "auth.rateLimit.perSecond": ("both", "auth.rate_limit_per_s"),
    "auth.rateLimit.burst": ("both", "auth.rate_limit_burst"),
    "auth.jwt.algorithm": ("both", "auth.jwt_algorithm"),
    "auth.jwt.audience": ("both", "auth.jwt_audience"),
    "auth.jwt.issuer": ("both", "auth.jwt_issuer"),
    "auth.jwt.adminScope": ("both", "auth.admin_scope"),
}
# fields the chart sets itself, and why
CHART_CHOICES = {
    "model_name": "the release's name (KServe names both servers after the InferenceService)",
    "data_dir": "RECSYS_DATA_DIR=/var/lib/recsys, an emptyDir",
    "bind_host": "0.0.0.0: the pod's address",
    "predictor_host": "KServe adds --predictor_host (the service's own predictor)",
    "predictor_hosts": "experimentRankers: one predictor-only InferenceService each",
    "shadow_predictor_host": "shadow.enabled: the shadow InferenceService",
    "bundle": "/mnt/models with model.storageUri, else the registry's alias",
    "model_uri": "/mnt/models with a storageUri, else models:/<model.registry.name>@<alias>",
    "store_url": "RECSYS_ONLINE_STORE: onlineStore.url or the Secret's online-store-url",
    "store_fallback_url": "onlineStore.fallback.persistentVolumeClaim: the SQLite file on it",
    "experiments": "the experiments ConfigMap, mounted at /etc/recsys",
    "exposure_dir": "/var/lib/recsys/exposures: transformer.exposures' volume",
    "auth.api_keys": "the Secret's api-keys (the predictor's: the transformer's key)",
    "auth.admin_keys": "the Secret's admin-keys",
    "auth.predictor_key": "the Secret's predictor-key",
    "auth.jwt_secret": "the Secret's jwt-secret (HS256)",
    "auth.jwt_public_key_file": "not offered: RS256 keys come as a JWKS (auth.jwt.jwksConfigMap)",
    "auth.jwks_file": "/etc/recsys/jwks/jwks.json from auth.jwt.jwksConfigMap",
    "auth.audit_log": "-: the pod's log (the servers' default)",
}
MODELS = {"transformer": TransformerSettings, "predictor": PredictorSettings}


def fields(model: type) -> dict[str, Any]:
    out = {name: f for name, f in model.model_fields.items() if name != "auth"}
    out.update({f"auth.{name}": f for name, f in AuthSettings.model_fields.items()})
    return out


def test_every_settings_field_is_a_chart_value_or_the_charts_own_choice() -> None:
    mapped = {(server, field) for server, field in VALUES.values()}
    for server, model in MODELS.items():
        for name in fields(model):
            from_values = (server, name) in mapped or ("both", name) in mapped
            assert from_values != (name in CHART_CHOICES), (
                f"{server} setting {name!r}: map it to a chart value in VALUES or explain it in CHART_CHOICES"
            )
    for path, (server, name) in VALUES.items():
        for s in MODELS if server == "both" else [server]:
            assert name in fields(MODELS[s]), f"{path}: {s} has no setting {name!r}"


def schema_at(path: str) -> dict[str, Any]:
    node = json.loads((CHART / "values.schema.json").read_text())
    for part in path.split("."):
        node = node["properties"][part]
    return node


def test_each_values_schema_accepts_what_its_setting_accepts() -> None:
    for path, (server, name) in VALUES.items():
        field = fields(MODELS["predictor" if server == "predictor" else "transformer"])[name]
        schema = schema_at(path)
        bounds = {type(m).__name__: m for m in field.metadata}
        types = schema.get("type", [])
        integer = "integer" in types
        if "Ge" in bounds:
            assert schema.get("minimum") == bounds["Ge"].ge, path
        if "Gt" in bounds:  # > 0 for a number; >= 1 for an integer (ms values are whole here)
            assert schema.get("exclusiveMinimum") == bounds["Gt"].gt or (
                schema.get("minimum") == bounds["Gt"].gt + 1 and integer), path  # fmt: skip
        if "Le" in bounds:
            assert schema.get("maximum") == bounds["Le"].le, path
        if field.annotation is bool:
            assert types == "boolean", path
        choices = [a for a in get_args(field.annotation) if isinstance(a, str)]
        if choices and "enum" in schema:
            assert set(schema["enum"]) - {""} == set(choices), path


SET = {
    "transformer": {"timeoutsMs": {"store": 40, "channel": 30, "predictor": 150, "request": 200},
                    "candidates": 250, "categoryCap": 2, "chainThreads": 2, "recallThreads": 3,
                    "itemCacheSize": 5000, "balancedAccept": "off"},
    "shadow": {"enabled": True, "sampleRate": 0.25, "maxInFlight": 3},
    "model": {"registry": {"pollSeconds": 45}, "runtime": "lightgbm"},
    "predictor": {"scoringThreads": 3},
    "serving": {"maxRequestBytes": 1048576, "bodyTimeoutSeconds": 5, "headerTimeoutSeconds": 4,
                "maxConnections": 300, "requestLogs": True},
    "auth": {"enabled": True, "rateLimit": {"perSecond": 100, "burst": 20},
             "jwt": {"algorithm": "HS256", "audience": "recsys-api", "issuer": "https://id.example",
                     "adminScope": "ops"}},
}  # fmt: skip


def value_at(path: str) -> Any:
    node: Any = SET
    for part in path.split("."):
        node = node[part]
    return node


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each server's settings object, made by the server's own parser from what the chart renders
    with SET (the Secret filled in as the kubelet would)."""
    tmp = tmp_path_factory.mktemp("settings")
    values = tmp / "values.yaml"
    values.write_text(yaml.safe_dump(SET))
    spec = find(objects(render(values=values)), "InferenceService", "recsys")["spec"]
    out = {}
    for server, component in (("transformer", spec["transformer"]), ("predictor", spec["predictor"])):
        module = f"inference.{server}_main"
        code = f"import sys\nfrom {module} import parse\nprint(parse(sys.argv[1:])[1].model_dump_json())\n"
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}/src:{REPO}", **pod_env(component)}
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp)  # the pod's emptyDir is not here
        args = container(component)["args"]
        done = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=REPO
        )
        assert done.returncode == 0, done.stderr[-2000:]
        out[server] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_a_value_set_in_helm_arrives_in_the_servers_settings(parsed: dict[str, dict[str, Any]]) -> None:
    for path, (server, name) in VALUES.items():
        for s in ("transformer", "predictor") if server == "both" else (server,):
            got: Any = parsed[s]
            for part in name.split("."):
                got = got[part]
            assert got == value_at(path), f"{path} -> {s}.{name}: {got!r}"
    # and the secrets arrived without being printed
    assert parsed["transformer"]["auth"]["api_keys"] == "**********"
