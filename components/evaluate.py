"""KFP component: offline evaluation and experiment metrics into summary.json."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def evaluate(
    cleaned: Input[Dataset],
    model: Input[Model],
    data_dir: str,
    summary: Output[Artifact],
    metrics: Output[Metrics],
) -> None:
    """Recall@K/NDCG@K/HitRate per channel and end to end, AUC/logloss, CTR/CVR/GMV per variant."""
    from pathlib import Path

    from recsys.steps import emit_result, step_guard
    from recsys.steps.evaluate import evaluate_step

    with step_guard():
        result = evaluate_step(
            cleaned_dir=Path(cleaned.path),
            model_dir=Path(model.path),
            data_dir=Path(data_dir),
            summary_json=Path(summary.path),
        )
    emit_result("evaluate", result)
    for key in ("holdout_auc", "ndcg_at_20", "recall_at_20"):
        if result.get(key) is not None:
            metrics.log_metric(key, result[key])
