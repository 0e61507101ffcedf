"""KFP component: recall channels + Faiss index, LightGBM ranker with ONNX export and parity check."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output


def train(
    cleaned: Input[Dataset],
    features: Input[Dataset],
    data_dir: str,
    recall_config: str,
    ranking_config: str,
    training_config: str,
    chain_config: str,
    evaluation_config: str,
    model: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """Train the ranker on the protocol's split, measure the served chain beside the baselines,
    write ranker/, recall/, histories.parquet, chain.json and training.json."""
    import os

    # LightGBM's OpenMP pool and scipy/scikit-learn's spin against each other on small machines
    # (a 60k-row fit took 15-25 s instead of 1-2 s); idle threads must sleep. Set before loading.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import json
    from pathlib import Path

    from recsys.steps import emit_result, step_guard
    from recsys.steps.train import train_step

    with step_guard():
        result = train_step(
            cleaned_dir=Path(cleaned.path),
            features_dir=Path(features.path),
            recall_config=json.loads(recall_config),
            ranking_config=json.loads(ranking_config),
            training_config=json.loads(training_config),
            chain_config=json.loads(chain_config),
            evaluation_config=json.loads(evaluation_config),
            data_dir=Path(data_dir),
            model_dir=Path(model.path),
        )
    emit_result("train", {k: v for k, v in result.items() if k != "evaluation"})
    for key in ("holdout_auc", "holdout_logloss", "valid_ndcg10", "e2e_ndcg_at_20", "e2e_recall_at_20"):
        if key in result["metrics"]:
            metrics.log_metric(key, result["metrics"][key])
    metrics.log_metric("onnx_max_abs_diff", result["onnx_max_abs_diff"])
    model.metadata["objective"] = result["objective"]
    model.metadata["schema_hash"] = result["schema_hash"]
