"""KFP component: data_quality_v2 scores the data; the pipeline's dsl.If reads ``passed``."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output


def quality_gate(
    cleaned: Input[Dataset],
    features: Input[Dataset],
    data_dir: str,
    quality_config: str,
    pushgateway_url: str,
    report: Output[Artifact],
    report_html: Output[HTML],
    prometheus: Output[Artifact],
    metrics: Output[Metrics],
) -> bool:
    """Checks, a 0-100 score, JSON/HTML reports and Prometheus metrics; returns whether it passed.

    The verdict is the plain return value (``outputs["Output"]``), not a NamedTuple field:
    kfp.local's dsl.If resolves the former but not a named output.

    ``pushgateway_url`` empty means the ``PUSHGATEWAY_URL`` environment variable (unset: no push).
    """
    import json
    import os
    from pathlib import Path

    from recsys.steps import emit_result, step_guard
    from recsys.steps.quality import quality_step

    with step_guard():
        result = quality_step(
            cleaned_dir=Path(cleaned.path),
            features_dir=Path(features.path),
            config=json.loads(quality_config),
            data_dir=Path(data_dir),
            report_json=Path(report.path),
            report_html=Path(report_html.path),
            metrics_prom=Path(prometheus.path),
            pushgateway_url=pushgateway_url or os.environ.get("PUSHGATEWAY_URL") or None,
        )
    emit_result("quality_gate", result)
    metrics.log_metric("quality_score", result["score"])
    metrics.log_metric("quality_threshold", result["threshold"])
    metrics.log_metric("failing_checks", len(result["failing"]))
    verdict = "passed" if result["passed"] else "FAILED"
    print(f"quality_gate: score {result['score']} / {result['threshold']} {verdict}", flush=True)
    for failing in result["failing"]:
        print(f"quality_gate: failing: {failing['name']}: {failing['message']}", flush=True)
    return bool(result["passed"])
