"""KFP component: incremental CDC extract from the source database into the raw lake."""

from kfp.dsl import Artifact, Dataset, Metrics, Output


def extract_load(
    source_db: str,
    data_dir: str,
    tables: str,
    run_id: str,
    run_time: str,
    window_start: str,
    window_end: str,
    as_of: str,
    raw: Output[Dataset],
    run_metrics: Output[Artifact],
    metrics: Output[Metrics],
) -> None:
    """Extract changed rows per table by ``updated_at`` watermark into ``<data_dir>/lake``.

    ``as_of``: what the run computes as of (empty: the run time; ``latest``: the newest event in
    the source; or an ISO time); it travels to every later step. ``source_db`` empty means the
    ``RECSYS_SOURCE_DB`` environment variable (set it from a Kubernetes secret so credentials stay
    out of the run's parameters).
    """
    import json
    import os
    from pathlib import Path

    from recsys.steps import emit_result, extract_step, new_run_id, parse_time, step_guard, utc_now

    with step_guard():
        now = parse_time(run_time, "run_time") or utc_now()
        result = extract_step(
            source_db=source_db or os.environ.get("RECSYS_SOURCE_DB", ""),
            data_dir=Path(data_dir),
            tables=json.loads(tables),
            run_id=run_id or new_run_id(now),
            now=now,
            window_start=parse_time(window_start, "window_start"),
            window_end=parse_time(window_end, "window_end"),
            raw_manifest=Path(raw.path),
            metrics_json=Path(run_metrics.path),
            as_of=as_of,
        )
    emit_result("extract_load", result)
    metrics.log_metric("rows_extracted", result["rows_extracted"])
    for name, table in result["tables"].items():
        metrics.log_metric(f"{name}_rows_extracted", table["rows_extracted"])
        if table["watermark_lag_seconds"] is not None:
            metrics.log_metric(f"{name}_watermark_lag_seconds", table["watermark_lag_seconds"])
    metrics.log_metric("duration_seconds", result["duration_seconds"])
    print(f"extract_load: {result['rows_extracted']} rows extracted", flush=True)
