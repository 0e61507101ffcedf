"""KFP component: bundle the run, track it in MLflow, register it, promote it if it is better."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def register(
    features: Input[Dataset],
    model: Input[Model],
    summary: Input[Artifact],
    data_dir: str,
    mlflow_tracking_uri: str,
    model_name: str,
    metrics: Output[Metrics],
) -> str:
    """Returns the bundle's path. ``mlflow_tracking_uri`` empty means ``MLFLOW_TRACKING_URI``
    (unset: a SQLite-backed MLflow store under ``<data_dir>/mlflow``)."""
    import os
    from pathlib import Path

    from recsys.steps import emit_result, step_guard
    from recsys.steps.register import register_step

    with step_guard():
        result = register_step(
            features_dir=Path(features.path),
            model_dir=Path(model.path),
            summary_json=Path(summary.path),
            data_dir=Path(data_dir),
            mlflow_uri=mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None,
            model_name=model_name,
        )
    emit_result("register", result)
    metrics.log_metric("model_version", float(result["model_version"]))
    metrics.log_metric("promoted", float(result["promoted"]))
    return result["bundle"]
