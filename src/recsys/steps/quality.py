"""Step quality_gate: data_quality_v2 over cleaned tables and features; the gate's verdict."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from recsys.quality import (
    Baseline,
    parse_quality_config,
    push,
    run_quality,
    write_html,
    write_json,
    write_textfile,
)
from recsys.steps.clean import read_cleaned
from recsys.steps.common import read_run, run_record_path
from recsys.steps.common import write_json as write_record
from recsys.steps.features import read_features


def quality_dir(data_dir: Path) -> Path:
    """Stable home of the baseline and the latest report (a textfile collector can read it)."""
    return data_dir / "quality"


def quality_step(
    *,
    cleaned_dir: Path,
    features_dir: Path,
    config: dict[str, Any],
    data_dir: Path,
    report_json: Path,
    report_html: Path,
    metrics_prom: Path,
    pushgateway_url: str | None,
) -> dict[str, Any]:
    """Score the data; always write the reports (a failing run most of all)."""
    run_id, ran_at, now = read_run(cleaned_dir)
    cfg = parse_quality_config(config, source="quality parameter")
    tables = read_cleaned(cleaned_dir)
    _, users, items, _ = read_features(features_dir)
    tables["user_features"] = users
    tables["item_features"] = items
    home = quality_dir(data_dir)
    baseline = Baseline.load_if_exists(home / "baseline.json")
    report = run_quality(tables, cfg, baseline=baseline, now=now, ran_at=ran_at)
    for path in (report_json, report_html, metrics_prom):
        path.parent.mkdir(parents=True, exist_ok=True)
    write_json(report, report_json)
    write_html(report, report_html)
    write_textfile(report, metrics_prom)
    home.mkdir(parents=True, exist_ok=True)
    for src, name in (
        (report_json, "latest.json"),
        (report_html, "latest.html"),
        (metrics_prom, "metrics.prom"),
    ):
        shutil.copy(src, home / name)
    if report.passed:  # a failing run must not become the reference of the next one
        report.baseline().save(home / "baseline.json")
    pushed = None
    if pushgateway_url:
        push(report, pushgateway_url)
        pushed = pushgateway_url
    summary = {
        "run_id": run_id,
        "score": round(report.score, 2),
        "threshold": report.threshold,
        "passed": report.passed,
        "failing": [{"name": c.name, "message": c.message} for c in report.failing],
        "checks": len(report.checks),
        "report_json": str(report_json),
        "report_html": str(report_html),
        "metrics_prom": str(metrics_prom),
        "pushed_to": pushed,
    }
    write_record(run_record_path(data_dir, run_id, "quality_gate"), summary)
    return summary
