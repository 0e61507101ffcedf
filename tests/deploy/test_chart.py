"""The helm chart, rendered by the real helm binary: lint, objects that match KServe's and
Kubernetes' API models, canary and shadow in both deployment modes, arguments the servers
themselves accept, bad values refused with the field's name, and manifests/ in sync.

Nothing is applied to a cluster (no API server runs here): see tests/deploy/chart.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from inference.experiments import Experiments
from recsys.errors import ConfigError
from tests.deploy.chart import CHART, MANIFESTS, REPO, find, helm, objects, render, validate_object


def container(component: dict[str, Any]) -> dict[str, Any]:
    (only,) = component["containers"]
    return only


def args_of(component: dict[str, Any]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in container(component)["args"])


def env_of(component: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(component).get("env", [])}


def secret_env_of(component: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Variables read from a Secret: name -> (secret, key)."""
    out = {}
    for e in container(component).get("env", []):
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            out[e["name"]] = (ref["name"], ref["key"])
    return out


# what a credentials Secret holds (docs/OPERATIONS_SOP.md), as Kubernetes would fill the variables
SECRET = {"predictor-key": "p" * 24, "admin-keys": "ops=" + "a" * 24, "api-keys": "shop=" + "s" * 24,
          "jwt-secret": "j" * 40, "online-store-url": "redis://:pw@recsys-redis:6379/0",
          "redis-password": "pw", "mlflow-backend-store-uri": "postgresql://u:pw@db/mlflow"}  # fmt: skip


def pod_env(component: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet makes it: Secret keys filled in from SECRET,
    $(VAR) references expanded."""
    env: dict[str, str] = {}
    for e in container(component).get("env", []):
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        value = SECRET[ref["key"]] if ref else e.get("value", "")
        env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value)
    return env


def test_lint_strict() -> None:
    out = helm("lint", "--strict", str(CHART), check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    "sets",
    [
        [],
        ["canary.enabled=true", "shadow.enabled=true", "mlflow.enabled=true"],
        ["deploymentMode=Serverless", "canary.enabled=true", "shadow.enabled=true"],
        [
            "model.storageUri=s3://recsys/bundles/v7",
            "redis.enabled=false",
            "onlineStore.url=redis://r:6379/1",
            "onlineStore.fallback.persistentVolumeClaim=recsys-store",
        ],
    ],
    ids=["default", "standard-canary-shadow", "serverless-canary-shadow", "storage-uri-fallback"],
)
def test_objects_match_the_api_models(sets: list[str]) -> None:
    docs = objects(render(*sets))
    problems = [p for doc in docs for p in validate_object(doc)]
    assert problems == []
    kinds = {doc["kind"] for doc in docs}
    assert {"InferenceService", "ConfigMap", "PodMonitor", "PrometheusRule"} <= kinds


def test_default_is_one_inference_service_with_transformer_and_predictor() -> None:
    docs = objects(render())
    isvc = find(docs, "InferenceService", "recsys")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    spec = isvc["spec"]
    assert "canary" not in spec and "canaryTrafficPercent" not in spec["predictor"]
    predictor, transformer = args_of(spec["predictor"]), args_of(spec["transformer"])
    assert predictor["model_uri"] == "models:/recsys-ranker@champion"
    assert predictor["model_name"] == transformer["model_name"] == "recsys"
    assert "store_url" not in transformer  # RECSYS_ONLINE_STORE, from the Secret (it holds a password)
    assert secret_env_of(spec["transformer"])["RECSYS_ONLINE_STORE"] == (
        "recsys-credentials",
        "online-store-url",
    )
    assert transformer["bind_host"] == predictor["bind_host"] == "0.0.0.0"  # the servers default to loopback
    # KServe adds --predictor_host itself (the service's own predictor): the chart must not pin it
    assert "predictor_host" not in transformer and "shadow_predictor_host" not in transformer
    assert env_of(spec["transformer"])["MLFLOW_TRACKING_URI"].startswith("http://mlflow.")
    find(docs, "Service", "recsys-redis")
    assert [d for d in docs if d["kind"] == "InferenceService"] == [isvc]  # no shadow by default


def test_store_fallback_is_the_sqlite_file_on_the_shared_volume() -> None:
    spec = find(
        objects(render("onlineStore.fallback.persistentVolumeClaim=recsys-store")),
        "InferenceService",
        "recsys",
    )
    transformer = spec["spec"]["transformer"]
    assert args_of(transformer)["store_fallback_url"] == "sqlite:////var/lib/recsys/store/online_store.db"
    mounts = {m["name"]: m["mountPath"] for m in container(transformer)["volumeMounts"]}
    volumes = {v["name"]: v for v in transformer["volumes"]}
    assert mounts["store-fallback"] == "/var/lib/recsys/store"
    assert volumes["store-fallback"]["persistentVolumeClaim"]["claimName"] == "recsys-store"
    default = find(objects(render()), "InferenceService", "recsys")["spec"]["transformer"]
    assert "store_fallback_url" not in args_of(default)


def test_standard_canary_declares_both_models_side_by_side() -> None:
    spec = find(
        objects(render("canary.enabled=true", "canary.trafficPercent=25")), "InferenceService", "recsys"
    )["spec"]
    assert args_of(spec["predictor"])["model_uri"] == "models:/recsys-ranker@champion"
    (canary,) = spec["canary"]
    assert canary["trafficPercent"] == 25
    assert args_of(canary["predictor"])["model_uri"] == "models:/recsys-ranker@challenger"


def test_serverless_canary_is_a_new_revision_with_canary_traffic_percent() -> None:
    text = render("deploymentMode=Serverless", "canary.enabled=true", "canary.storageUri=gs://b/v8")
    spec = find(objects(text), "InferenceService", "recsys")["spec"]
    assert "canary" not in spec
    assert spec["predictor"]["canaryTrafficPercent"] == 10
    assert args_of(spec["predictor"])["model_uri"] == "/mnt/models"
    assert env_of(spec["predictor"])["STORAGE_URI"] == "gs://b/v8"


def test_shadow_is_its_own_service_and_the_transformer_mirrors_to_it() -> None:
    docs = objects(render("shadow.enabled=true", "shadow.sampleRate=0.25", release="prod", namespace="rec"))
    shadow = find(docs, "InferenceService", "prod-shadow")
    assert "transformer" not in shadow["spec"]
    # the shadow answers to the main model name: the transformer calls /v2/models/prod/infer on it
    assert args_of(shadow["spec"]["predictor"])["model_name"] == "prod"
    assert args_of(shadow["spec"]["predictor"])["model_uri"] == "models:/recsys-ranker@challenger"
    transformer = args_of(find(docs, "InferenceService", "prod")["spec"]["transformer"])
    assert transformer["shadow_predictor_host"] == "prod-shadow-predictor.rec"  # KServe's service name
    assert transformer["shadow_sample_rate"] == "0.25"
    rule = find(docs, "PrometheusRule", "prod")
    assert "RecsysShadowDiverges" in yaml.safe_dump(rule)


def _parses(
    module: str, args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """The server's own parser and checks on ``args`` (in a subprocess: the KServe parser is shared
    module state)."""
    code = f"import sys\nfrom inference.{module} import parse\nparse(sys.argv[1:])\n"
    full_env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}/src:{REPO}", **env}
    full_env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=full_env, cwd=REPO
    )


@pytest.mark.parametrize(
    "sets",
    [
        [],
        ["shadow.enabled=true", "canary.enabled=true", "model.storageUri=s3://b/v1"],
        ["onlineStore.fallback.persistentVolumeClaim=recsys-store"],
    ],
)
def test_the_servers_accept_the_arguments_the_chart_gives_them(sets: list[str], tmp_path: Path) -> None:
    docs = objects(render(*sets))
    spec = find(docs, "InferenceService", "recsys")["spec"]
    predictors = [spec["predictor"]] + [c["predictor"] for c in spec.get("canary", [])]
    for component, module in [(spec["transformer"], "transformer_main")] + [
        (p, "predictor_main") for p in predictors
    ]:
        c = container(component)
        assert c["command"] == ["python", "-m", f"inference.{module}"]
        done = _parses(module, c["args"], pod_env(component), tmp_path)
        assert done.returncode == 0, f"{module} refuses {c['args']}: {done.stderr}"


def test_experiment_rankers_are_their_own_predictors_called_by_the_transformer(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    experiments = {"layer": "ranking", "salt": "s", "variants": [
        {"name": "control", "share": 0.5, "ranker": "champion"},
        {"name": "new_ranker", "share": 0.5, "ranker": "challenger"}]}  # fmt: skip
    values.write_text(yaml.safe_dump({"experimentRankers": {"challenger": {"alias": "challenger"}},
                                      "experiments": experiments}))  # fmt: skip
    docs = objects(render(values=values, namespace="rec"))
    ranker = find(docs, "InferenceService", "recsys-challenger")
    assert "transformer" not in ranker["spec"]
    assert args_of(ranker["spec"]["predictor"])["model_uri"] == "models:/recsys-ranker@challenger"
    transformer = find(docs, "InferenceService", "recsys")["spec"]["transformer"]
    assert args_of(transformer)["predictor_hosts"] == "challenger=recsys-challenger-predictor.rec"
    done = _parses("transformer_main", container(transformer)["args"], pod_env(transformer), tmp_path)
    assert done.returncode == 0, done.stderr
    pods = find(docs, "PodMonitor", "recsys")["spec"]["selector"]["matchExpressions"][0]["values"]
    assert "recsys-challenger" in pods
    # a variant scored by a ranker the chart does not deploy is refused at render
    experiments["variants"][1]["ranker"] = "nope"
    values.write_text(yaml.safe_dump({"experiments": experiments}))
    out = helm("template", "recsys", str(CHART), "-f", str(values), check=False)
    assert out.returncode != 0
    assert (
        'experiments.variants[1].ranker: "nope" is neither champion nor a key of experimentRankers'
        in out.stderr
    )


def test_a_made_up_flag_is_refused_by_that_check(tmp_path: Path) -> None:
    """The check above can fail: a flag the transformer does not know is refused."""
    done = _parses("transformer_main", ["--no_such_flag=1"], {}, tmp_path)
    assert done.returncode != 0 and "--no_such_flag" in done.stderr


def test_experiments_config_map_loads_with_the_transformers_loader(tmp_path: Path) -> None:
    cm = find(objects(render()), "ConfigMap", "recsys-experiments")
    path = tmp_path / "experiments.yaml"
    path.write_text(cm["data"]["experiments.yaml"])
    experiments = Experiments.load(path)
    shipped = Experiments.load(REPO / "config" / "experiments.yaml")
    users = [f"u{i}" for i in range(500)]
    # the chart's default is the project's config: every user lands in the same variant
    assert [experiments.assign(u).name for u in users] == [shipped.assign(u).name for u in users]


def test_a_changed_experiment_rolls_the_transformer_pods() -> None:
    def checksum(*sets: str) -> str:
        isvc = find(objects(render(*sets)), "InferenceService", "recsys")
        return isvc["spec"]["transformer"]["annotations"]["checksum/experiments"]

    assert checksum() == checksum("canary.enabled=true")
    assert checksum() != checksum("experiments.salt=reshuffled")


def test_shares_that_do_not_add_up_are_refused_by_the_chart_and_by_the_loader(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "experiments": {
                    "layer": "l",
                    "salt": "s",
                    "variants": [{"name": "a", "share": 0.7}, {"name": "b", "share": 0.5}],
                }
            }
        )
    )
    out = helm("template", "recsys", str(CHART), "-f", str(values), check=False)
    assert out.returncode != 0 and "experiments.variants: shares add up to 1.2, expected 1" in out.stderr
    # the same text, had it reached the transformer, stops it at start-up too
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(values.read_text())["experiments"]))
    with pytest.raises(ConfigError, match="shares add up to 1.2"):
        Experiments.load(path)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["canary.trafficPercent=150"], "/canary/trafficPercent"),
        (["deploymentMode=Knative"], "/deploymentMode"),
        (["canary.enable=true"], "'enable' not allowed"),
        (["transformer.workers=0"], "/transformer/workers"),
        (["shadow.sampleRate=2"], "/shadow/sampleRate"),
        (["model.runtime=xgboost"], "/model/runtime"),
        (["redis.enabled=false"], "onlineStore.url: required when redis.enabled is false"),
    ],
)
def test_bad_values_are_refused_naming_the_field(sets: list[str], message: str) -> None:
    args = ["template", "recsys", str(CHART)] + [a for s in sets for a in ("--set", s)]
    out = helm(*args, check=False)
    assert out.returncode != 0
    assert message in out.stderr


@pytest.mark.parametrize("name", ["recsys.yaml", "recsys-canary-shadow.yaml"])
def test_rendered_manifests_are_in_sync_with_the_chart(name: str) -> None:
    """manifests/ is what `scripts/render_manifests.sh` writes; rerun it after changing the chart."""
    committed = (MANIFESTS / name).read_text()
    values = MANIFESTS / "values" / name
    assert committed == render(values=values if values.exists() else None), "run scripts/render_manifests.sh"


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod the chart makes: ISVC components (KServe builds their pods from these fields) and
    the pod templates of Deployments and Jobs."""
    pods = {}
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "InferenceService":
            spec = doc["spec"]
            for part in ("predictor", "transformer"):
                if part in spec:
                    pods[f"{name}/{part}"] = spec[part]
            for n, canary in enumerate(spec.get("canary", [])):
                pods[f"{name}/canary{n}"] = canary["predictor"]
        elif doc["kind"] in ("Deployment", "Job"):
            pods[name] = doc["spec"]["template"]["spec"]
    return pods


EVERYTHING = ["canary.enabled=true", "shadow.enabled=true", "mlflow.enabled=true",
              "pipeline.schedule.enabled=true", "auth.jwt.algorithm=HS256",
              "mlflow.backendStoreUriFromSecret=true"]  # fmt: skip


def test_every_pod_runs_as_non_root_on_a_read_only_root_filesystem() -> None:
    pods = pod_specs(objects(render(*EVERYTHING)))
    assert len(pods) >= 7
    for name, pod in pods.items():
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in pod["containers"]:
            cs = c["securityContext"]
            assert cs["readOnlyRootFilesystem"] is True and cs["allowPrivilegeEscalation"] is False, name
            assert cs["capabilities"] == {"drop": ["ALL"]}, name
            volumes = {v["name"] for v in pod.get("volumes", [])}
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            assert mounts <= volumes, (name, mounts - volumes)
            if c["name"] != "redis":  # Python writes its temporary files to /tmp
                assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, name


SECRET_VARIABLES = {"RECSYS_AUTH_ADMIN_KEYS", "RECSYS_AUTH_JWT_SECRET", "RECSYS_AUTH_PREDICTOR_KEY",
                    "REDIS_PASSWORD", "REDISCLI_AUTH", "RECSYS_ONLINE_STORE",
                    "MLFLOW_BACKEND_STORE_URI"}  # fmt: skip


def test_no_secret_is_on_a_command_line_every_one_comes_from_the_secret() -> None:
    docs = objects(render(*EVERYTHING))
    for name, pod in pod_specs(docs).items():
        for c in pod["containers"]:
            line = " ".join(c.get("command", []) + c.get("args", []))
            for word in ("redis://", "postgresql://", "mysql://", "api-keys", "_KEY=", "password="):
                assert word not in line, (name, word, line)
            plain = {e["name"] for e in c.get("env", []) if "value" in e}
            assert not plain & SECRET_VARIABLES, (name, plain & SECRET_VARIABLES)
    isvc = find(docs, "InferenceService", "recsys")["spec"]
    t, p = secret_env_of(isvc["transformer"]), secret_env_of(isvc["predictor"])
    assert {k: v[1] for k, v in t.items()} == {
        "RECSYS_ONLINE_STORE": "online-store-url", "RECSYS_AUTH_PREDICTOR_KEY": "predictor-key",
        "RECSYS_AUTH_ADMIN_KEYS": "admin-keys", "RECSYS_AUTH_API_KEYS": "api-keys",
        "RECSYS_AUTH_JWT_SECRET": "jwt-secret"}  # fmt: skip
    assert {k: v[1] for k, v in p.items()} == {"RECSYS_AUTH_PREDICTOR_KEY": "predictor-key",
                                               "RECSYS_AUTH_ADMIN_KEYS": "admin-keys",
                                               "RECSYS_AUTH_JWT_SECRET": "jwt-secret"}  # fmt: skip
    # the predictor's one client is the transformer, with the key the transformer is given
    assert env_of(isvc["predictor"])["RECSYS_AUTH_API_KEYS"] == "transformer=$(RECSYS_AUTH_PREDICTOR_KEY)"
    assert env_of(isvc["transformer"])["RECSYS_AUTH_ENABLED"] == "true"
    mlflow = pod_specs(docs)["Deployment/recsys-mlflow"]["containers"][0]
    assert (
        secret_env_of({"containers": [mlflow]})["MLFLOW_BACKEND_STORE_URI"][1] == "mlflow-backend-store-uri"
    )
    job = find(docs, "Job", "recsys-pipeline-schedule")["spec"]["template"]["spec"]["containers"][0]
    assert "--store-secret=recsys-credentials" in job["args"]  # the steps read it, no run parameter
    assert "RECSYS_ONLINE_STORE" not in {e["name"] for e in job["env"]}
    redis = find(docs, "Deployment", "recsys-redis")["spec"]["template"]["spec"]["containers"][0]
    password = ("recsys-credentials", "redis-password")
    assert secret_env_of({"containers": [redis]}) == {"REDIS_PASSWORD": password, "REDISCLI_AUTH": password}


def test_the_servers_take_their_secrets_from_the_variables_the_chart_sets(tmp_path: Path) -> None:
    """The chart's variables, filled as Kubernetes would from a Secret, are what the servers'
    edge and settings read: the predictor accepts the transformer's key."""
    from inference.auth import Authenticator, load_auth_settings

    isvc = find(objects(render("auth.jwt.algorithm=HS256")), "InferenceService", "recsys")["spec"]
    for part in ("transformer", "predictor"):
        env = pod_env(isvc[part])
        auth_env = {
            k.removeprefix("RECSYS_AUTH_").lower(): v for k, v in env.items() if k.startswith("RECSYS_AUTH_")
        }
        auth = Authenticator(load_auth_settings(**auth_env))
        if part == "predictor":
            assert auth.caller(SECRET["predictor-key"]).name == "transformer"
        else:
            assert auth.caller("s" * 24).name == "shop" and auth.caller("a" * 24).admin


def test_network_policies_let_only_the_transformer_reach_predictors_and_redis() -> None:
    docs = objects(render("shadow.enabled=true"))
    predictors = find(docs, "NetworkPolicy", "recsys-predictors")["spec"]
    assert predictors["podSelector"]["matchLabels"] == {"app.kubernetes.io/instance": "recsys",
                                                        "recsys.io/role": "predictor"}  # fmt: skip
    peers = predictors["ingress"][0]["from"]
    assert peers[0]["podSelector"]["matchLabels"]["recsys.io/role"] == "transformer"
    assert peers[1]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    # every predictor (the shadow's too) carries the label the policy selects, the transformer its own
    for name, pod in pod_specs(docs).items():
        if name.startswith("InferenceService/"):
            role = "transformer" if name.endswith("/transformer") else "predictor"
            assert pod["labels"]["recsys.io/role"] == role, name
    store = find(docs, "NetworkPolicy", "recsys-redis")["spec"]
    assert store["ingress"][0]["ports"] == [{"port": 6379, "protocol": "TCP"}]
    assert [p["podSelector"]["matchLabels"] for p in store["ingress"][0]["from"]] == [
        {"app.kubernetes.io/instance": "recsys", "recsys.io/role": "transformer"},
        {"pipelines.kubeflow.org/v2_component": "true"}]  # fmt: skip
    assert not [d for d in objects(render("networkPolicy.enabled=false")) if d["kind"] == "NetworkPolicy"]


def test_istio_policies_for_mesh_users() -> None:
    docs = objects(render("auth.istio.enabled=true", "auth.istio.issuer=https://id.example",
                          "auth.istio.jwksUri=https://id.example/jwks.json"))  # fmt: skip
    request_auth = find(docs, "RequestAuthentication", "recsys-transformer")["spec"]
    assert request_auth["jwtRules"][0]["issuer"] == "https://id.example"
    policy = find(docs, "AuthorizationPolicy", "recsys-transformer")["spec"]
    assert policy["rules"][0]["from"][0]["source"]["requestPrincipals"] == ["*"]
    assert "/v2/health/ready" in policy["rules"][1]["to"][0]["operation"]["paths"]
    out = helm("template", "recsys", str(CHART), "--set", "auth.istio.enabled=true", check=False)
    assert out.returncode != 0 and "auth.istio.issuer: required" in out.stderr


def test_generated_credentials_hold_a_store_url_with_the_redis_password() -> None:
    import base64

    docs = objects(render("credentials.generate=true"))
    data = {
        k: base64.b64decode(v).decode() for k, v in find(docs, "Secret", "recsys-credentials")["data"].items()
    }
    assert data["online-store-url"] == f"redis://:{data['redis-password']}@recsys-redis:6379/0"
    assert data["api-keys"].startswith("app=") and len(data["predictor-key"]) == 32
    assert not [d for d in objects(render()) if d["kind"] == "Secret"]  # never in rendered manifests


def test_redis_persistence_is_an_append_only_file_on_a_pvc() -> None:
    docs = objects(
        render("redis.persistence.enabled=true", "redis.persistence.persistentVolumeClaim=redis-data")
    )
    pod = find(docs, "Deployment", "recsys-redis")["spec"]["template"]["spec"]
    assert "--appendonly yes" in pod["containers"][0]["args"][0]
    assert {v["name"]: v for v in pod["volumes"]}["data"]["persistentVolumeClaim"][
        "claimName"
    ] == "redis-data"
    default = find(objects(render()), "Deployment", "recsys-redis")["spec"]["template"]["spec"]
    assert "--appendonly no" in default["containers"][0]["args"][0]
