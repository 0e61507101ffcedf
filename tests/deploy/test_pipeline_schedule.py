"""The training pipeline's recurring run on Kubeflow Pipelines: `recsys pipeline schedule` with the
real kfp.Client against a stand-in KFP API server (tests/deploy/fake_kfp.py; a real one needs a
cluster), and the chart's hook Job running that command with its own arguments and environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.chart import REPO, find, objects, render, validate_object
from tests.deploy.fake_kfp import fake_kfp

RECSYS = [sys.executable, "-m", "recsys"]
STEPS = {"extract_load", "clean", "features", "quality_gate", "train", "evaluate", "register", "sync_store"}


def recsys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": f"{REPO}/src:{REPO}", **(env or {})}
    return subprocess.run(
        [*RECSYS, *args], capture_output=True, text=True, env=full_env, cwd=REPO, timeout=300
    )


def executors(run: dict[str, Any]) -> dict[str, Any]:
    return run["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_schedule_creates_one_recurring_run_and_replaces_it_on_rerun() -> None:
    with fake_kfp() as (kfp, url):
        args = ["pipeline", "schedule", "--host", url, "--data-pvc", "recsys-data", "--cron", "0 30 2 * * *",
                "--source-db-secret", "shop-db", "--json"]  # fmt: skip
        first = recsys(*args)
        assert first.returncode == 0, first.stderr
        second = recsys(*args)
        assert second.returncode == 0, second.stderr
        a, b = json.loads(first.stdout), json.loads(second.stdout)  # stdout is the answer only
        assert b["replaced"] == [a["recurring_run_id"]] and a["replaced"] == []
        (run,) = kfp.recurring_runs.values()
        assert run["recurring_run_id"] == b["recurring_run_id"]
        assert run["display_name"] == "recsys-training"
        assert run["trigger"]["cron_schedule"]["cron"] == "0 30 2 * * *"
        assert run["mode"] == "ENABLE" and run["no_catchup"] is True and int(run["max_concurrency"]) == 1
        assert len(kfp.experiments) == 1 and run["experiment_id"] == a["experiment_id"]
        params = run["runtime_config"]["parameters"]
        # each run makes its own id and time; the source URL comes from the Secret in the steps
        assert params["run_id"] == params["run_time"] == params["source_db"] == ""
        assert params["data_dir"] == "/data"
        spec = run["pipeline_spec"]["pipeline_spec"]
        tasks = spec["root"]["dag"]["tasks"]
        assert {t["taskInfo"]["name"] for t in tasks.values()} >= {"extract_load", "clean", "features"}
        images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
        assert images == {"ghcr.io/recsys-project/recsys-python:0.1.0"}
        # every step mounts the data volume and reads the source URL from the Secret
        mounted = executors(run)
        assert len(mounted) == len(STEPS)
        for executor in mounted.values():
            (pvc,) = executor["pvcMount"]
            assert (
                pvc["mountPath"] == "/data"
                and pvc["pvcNameParameter"]["runtimeValue"]["constant"] == "recsys-data"
            )
            (secret,) = executor["secretAsEnv"]
            assert secret["secretName"] == "shop-db"
            assert secret["keyToEnv"] == [{"secretKey": "url", "envVar": "RECSYS_SOURCE_DB"}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 3 * * *"], "--cron: '0 3 * * *' must have 6 fields"),
        (["--host", "http://127.0.0.1:9"], "pipeline schedule: Kubeflow Pipelines at http://127.0.0.1:9"),
    ],
)
def test_bad_schedule_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    base = {"--host": "http://127.0.0.1:9", "--data-pvc": "recsys-data"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    done = recsys("pipeline", "schedule", *[x for kv in base.items() for x in kv])
    assert done.returncode == 2
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("recsys: error:")]
    assert message in line


def test_the_charts_hook_job_schedules_the_pipeline(tmp_path: Path) -> None:
    docs = objects(
        render(
            "pipeline.schedule.enabled=true",
            "pipeline.schedule.sourceDbSecret=shop-db",
            "pipeline.schedule.pushgatewayUrl=http://pushgateway.monitoring:9091",
            "mlflow.enabled=true",
        )
    )
    job = find(docs, "Job", "recsys-pipeline-schedule")
    assert validate_object(job) == []
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["recsys", "pipeline", "schedule"]
    env = {e["name"]: e["value"] for e in container["env"]}
    with fake_kfp() as (kfp, url):
        args = [a if not a.startswith("--host=") else f"--host={url}" for a in container["args"]]
        done = recsys("pipeline", "schedule", *args, env={**env, "RECSYS_DATA_DIR": str(tmp_path)})
        assert done.returncode == 0, done.stderr
        (run,) = kfp.recurring_runs.values()
    params = run["runtime_config"]["parameters"]
    # the steps are told the release's registry and Pushgateway through the run's parameters; the
    # store's URL holds Redis's password: it comes from the Secret, never a parameter (KFP shows those)
    assert params["store_url"] == ""
    assert params["mlflow_tracking_uri"] == "http://recsys-mlflow.recsys.svc.cluster.local:5000"
    assert params["pushgateway_url"] == "http://pushgateway.monitoring:9091"
    assert params["model_name"] == "recsys-ranker"
    image = next(iter(run["pipeline_spec"]["pipeline_spec"]["deploymentSpec"]["executors"].values()))
    assert image["container"]["image"] == "ghcr.io/recsys-project/recsys-python:0.1.0"
    for executor in executors(run).values():
        by_secret = {e["secretName"]: e["keyToEnv"] for e in executor["secretAsEnv"]}
        assert by_secret["shop-db"] == [{"secretKey": "url", "envVar": "RECSYS_SOURCE_DB"}]
        assert by_secret["recsys-credentials"] == [
            {"secretKey": "online-store-url", "envVar": "RECSYS_ONLINE_STORE"}
        ]
