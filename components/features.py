"""KFP component: FeatureEngineV2 over the cleaned tables."""

from kfp.dsl import Dataset, Input, Metrics, Output


def features(
    cleaned: Input[Dataset],
    data_dir: str,
    feature_registry: str,
    features_out: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """User and item feature vectors (registry order) for serving, with the registry they follow."""
    import json
    from pathlib import Path

    from recsys.steps import emit_result, step_guard
    from recsys.steps.features import features_step

    with step_guard():
        result = features_step(
            cleaned_dir=Path(cleaned.path),
            registry=json.loads(feature_registry),
            data_dir=Path(data_dir),
            features_dir=Path(features_out.path),
        )
    emit_result("features", result)
    metrics.log_metric("users", result["users"])
    metrics.log_metric("items", result["items"])
    metrics.log_metric("ranker_features", result["ranker_features"])
    print(f"features: {result['users']} users, {result['items']} items", flush=True)
