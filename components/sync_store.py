"""KFP component: publish a bundle to the online store."""

from kfp.dsl import Metrics, Output


def sync_store(
    bundle: str,
    data_dir: str,
    store_url: str,
    fallback_url: str,
    activate: str,
    metrics: Output[Metrics],
) -> None:
    """``activate``: "auto" (when the bundle's model was promoted to champion), "true", "false".
    ``store_url`` empty means ``RECSYS_ONLINE_STORE`` (a secret in a cluster)."""
    import json
    import os
    from pathlib import Path

    from recsys.steps import emit_result, step_guard
    from recsys.steps.sync import sync_step

    with step_guard():
        path = Path(bundle)
        if activate == "auto":
            registration = path / "registration.json"
            active = json.loads(registration.read_text())["promoted"] if registration.exists() else True
        else:
            active = activate == "true"
        result = sync_step(
            bundle=path,
            data_dir=Path(data_dir),
            store_url=store_url or os.environ.get("RECSYS_ONLINE_STORE", ""),
            fallback_url=fallback_url or None,
            activate=active,
        )
    emit_result("sync_store", result)
    metrics.log_metric("users", result["users"])
    metrics.log_metric("items", result["items"])
