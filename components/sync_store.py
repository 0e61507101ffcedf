"""KFP component: copy the run's outputs into its bundle and publish it to the online store."""

from kfp.dsl import Dataset, Input, Metrics, Output


def sync_store(
    features: Input[Dataset],
    data_dir: str,
    store_url: str,
    fallback_url: str,
    metrics: Output[Metrics],
) -> None:
    """``store_url`` empty means ``RECSYS_ONLINE_STORE`` (a secret in a cluster)."""
    import os
    from pathlib import Path

    from recsys.steps import emit_result, step_guard
    from recsys.steps.sync import sync_step

    with step_guard():
        result = sync_step(
            features_dir=Path(features.path),
            data_dir=Path(data_dir),
            store_url=store_url or os.environ.get("RECSYS_ONLINE_STORE", ""),
            fallback_url=fallback_url or None,
        )
    emit_result("sync_store", result)
    metrics.log_metric("users", result["users"])
    metrics.log_metric("items", result["items"])
    print(f"sync_store: version {result['version']} active in {result['store']}", flush=True)
