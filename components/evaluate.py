"""KFP component: offline evaluation and experiment metrics into summary.json."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output


def evaluate(
    cleaned: Input[Dataset],
    model: Input[Model],
    data_dir: str,
    summary: Output[Artifact],
    report: Output[HTML],
    metrics: Output[Metrics],
) -> None:
    """The served chain beside the baselines (Recall/NDCG/HitRate/MRR/coverage with intervals),
    per channel, the ranker's AUC/logloss, CTR/CVR/GMV per variant; summary.json and a page."""
    from pathlib import Path

    from recsys.steps import emit_result, step_guard
    from recsys.steps.evaluate import evaluate_step

    with step_guard():
        result = evaluate_step(
            cleaned_dir=Path(cleaned.path),
            model_dir=Path(model.path),
            data_dir=Path(data_dir),
            summary_json=Path(summary.path),
            report_html=Path(report.path),
        )
    emit_result("evaluate", result)
    for key in ("holdout_auc", "ndcg_at_20", "recall_at_20", "ndcg_at_20_vs_reference"):
        if result.get(key) is not None:
            metrics.log_metric(key, result[key])
