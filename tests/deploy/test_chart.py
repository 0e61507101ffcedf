"""The helm chart, rendered by the real helm binary: lint, objects that match KServe's and
Kubernetes' API models, canary and shadow in both deployment modes, arguments the servers
themselves accept, bad values refused with the field's name, and manifests/ in sync.

Nothing is applied to a cluster (no API server runs here): see tests/deploy/chart.py."""

from __future__ import annotations

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
    assert transformer["store_url"] == "redis://recsys-redis:6379/0"
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
    code = f"import sys\nfrom inference.{module} import build_parser\n"
    code += "args = build_parser().parse_args(sys.argv[1:])\n"
    if module == "transformer_main":
        code += "from inference.transformer_main import check_args\ncheck_args(args)\n"
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
        done = _parses(module, c["args"], env_of(component), tmp_path)
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
    done = _parses("transformer_main", container(transformer)["args"], env_of(transformer), tmp_path)
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
