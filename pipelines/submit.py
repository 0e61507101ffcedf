"""The training pipeline's arguments from the settings, and its recurring run on a Kubeflow
Pipelines backend (``recsys pipeline schedule``)."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from pipelines.cluster import DATA_MOUNT, ClusterConfig
from recsys.errors import ConfigError, PipelineError
from recsys.settings import Settings, read_yaml


def pipeline_arguments(
    settings: Settings,
    *,
    data_dir: str,
    source_db: str,
    store_url: str,
    fallback_url: str,
    run_id: str = "",
    run_time: datetime | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    as_of: str = "",
) -> dict[str, Any]:
    """The training pipeline's parameters: the same settings drive a local run and a cluster run.
    Empty ``run_id``/``run_time``: each run makes its own (a recurring run's case); an empty URL
    means the step's environment (``RECSYS_SOURCE_DB``, ``RECSYS_ONLINE_STORE``)."""
    return {
        "source_db": source_db,
        "data_dir": data_dir,
        "tables": json.dumps(settings.cdc.tables),
        "run_id": run_id,
        "run_time": run_time.isoformat() if run_time else "",
        "window_start": window_start.isoformat() if window_start else "",
        "window_end": window_end.isoformat() if window_end else "",
        "as_of": as_of,
        "cleaning_config": settings.cleaning.model_dump_json(),
        "feature_registry": json.dumps(read_yaml(settings.feature_registry)),
        "quality_config": json.dumps(read_yaml(settings.quality_config)),
        "pushgateway_url": settings.pushgateway_url or "",
        "store_url": store_url,
        "fallback_url": fallback_url,
        "recall_config": json.dumps(read_yaml(settings.recall_config)),
        "ranking_config": settings.ranking.model_dump_json(),
        "training_config": settings.training.model_dump_json(),
        "chain_config": settings.chain.model_dump_json(),
        "evaluation_config": settings.evaluation.model_dump_json(),
        "mlflow_tracking_uri": settings.mlflow_tracking_uri or "",
        "model_name": settings.model_name,
    }


def check_cron(cron: str) -> str:
    """KFP's cron has six fields, seconds first ("0 0 3 * * *": daily at 03:00)."""
    if len(cron.split()) != 6:
        raise ConfigError(f"--cron: {cron!r} must have 6 fields, seconds first (e.g. '0 0 3 * * *')")
    return cron


def schedule_training(
    settings: Settings,
    *,
    host: str,
    name: str,
    cron: str,
    experiment: str,
    cluster: ClusterConfig,
    namespace: str | None = None,
) -> dict[str, Any]:
    """Create (or replace: KFP cannot update one) the recurring run ``name`` of the training
    pipeline in ``experiment``, one run at a time, no catch-up after a pause."""
    import kfp
    import kfp_server_api
    import urllib3

    from pipelines.compile import compile_training

    check_cron(cron)
    # URLs left empty come from each step's environment: the cluster's, not this machine's
    arguments = pipeline_arguments(
        settings,
        data_dir=DATA_MOUNT,
        source_db="",
        store_url=settings.online_store or "",
        fallback_url=settings.online_store_fallback or "",
    )
    try:
        # kfp.Client prints links and warns about server versions: keep stdout for our answer
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            client = kfp.Client(host=host, namespace=namespace)
            exp = client.create_experiment(experiment, namespace=namespace)  # returns an existing one
            listed = client.list_recurring_runs(experiment_id=exp.experiment_id, page_size=200)
            replaced = [r.recurring_run_id for r in listed.recurring_runs or [] if r.display_name == name]
            for run_id in replaced:
                client.delete_recurring_run(run_id)
            with tempfile.TemporaryDirectory() as tmp:
                package = Path(tmp) / "recsys-training.yaml"
                compile_training(settings.image, package, cluster)
                created = client.create_recurring_run(
                    experiment_id=exp.experiment_id,
                    job_name=name,
                    cron_expression=cron,
                    pipeline_package_path=str(package),
                    params=arguments,
                    max_concurrency=1,
                    no_catchup=True,
                    enable_caching=False,
                )
    except (OSError, ValueError, urllib3.exceptions.HTTPError, kfp_server_api.ApiException) as e:
        raise PipelineError(f"pipeline schedule: Kubeflow Pipelines at {host}: {e}") from e
    return {
        "recurring_run_id": created.recurring_run_id,
        "name": name,
        "cron": cron,
        "experiment_id": exp.experiment_id,
        "replaced": replaced,
        "image": settings.image,
        "data_pvc": cluster.data_pvc,
    }
