"""KFP component: clean the lake snapshot (outliers, timestamps, duplicates, integrity)."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Output


def clean(
    raw: Input[Dataset],
    data_dir: str,
    cleaning_config: str,
    cleaned: Output[Dataset],
    report: Output[Artifact],
    metrics: Output[Metrics],
) -> None:
    """Write cleaned, date-partitioned Parquet and a report counting every fix and drop.

    The run id and run time come from the extract's manifest, so every step of a run agrees.
    """
    from pathlib import Path

    from recsys.cleaning.config import CleaningConfig
    from recsys.steps import clean_step, emit_result, step_guard

    with step_guard():
        result = clean_step(
            raw_manifest=Path(raw.path),
            config=CleaningConfig.model_validate_json(cleaning_config),
            data_dir=Path(data_dir),
            cleaned_dir=Path(cleaned.path),
            report_json=Path(report.path),
        )
    emit_result("clean", result)
    for key, value in result["totals"].items():
        metrics.log_metric(f"rows_{key}", value)
    print(f"clean: {result['totals']}", flush=True)
