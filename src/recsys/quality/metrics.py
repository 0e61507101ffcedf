"""Prometheus metrics of a quality run: a textfile for node-exporter, or a Pushgateway push.

Each call builds a fresh ``CollectorRegistry``: the pipeline step is a short-lived process,
and the global registry would mix in process metrics and keep stale label sets across runs.
The library never reads ``PUSHGATEWAY_URL``; the caller decides whether and where to push.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest, push_to_gateway, write_to_textfile

from recsys.errors import RecsysError
from recsys.quality.runner import QualityReport

DEFAULT_JOB = "recsys_data_quality"


class PushError(RecsysError):
    """The Pushgateway could not be reached or refused the metrics."""

    status = 503


def build_registry(report: QualityReport) -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("recsys_data_quality_score", "Weighted data quality score (0-100)", registry=registry).set(
        report.score
    )
    Gauge("recsys_data_quality_threshold", "Score below which the pipeline stops", registry=registry).set(
        report.threshold
    )
    Gauge("recsys_data_quality_passed", "1 if the score reached the threshold", registry=registry).set(
        1.0 if report.passed else 0.0
    )
    run_at = report.run_at
    if run_at.tzinfo is None:  # the pipeline's run times are naive UTC
        run_at = run_at.replace(tzinfo=UTC)
    Gauge(
        "recsys_data_quality_last_run_timestamp_seconds",
        "Run time of the last quality run (Unix seconds)",
        registry=registry,
    ).set(run_at.timestamp())
    passed = Gauge(
        "recsys_data_quality_check_passed", "1 if the check passed", ["check", "table"], registry=registry
    )
    score = Gauge(
        "recsys_data_quality_check_score", "Score of the check (0-1)", ["check", "table"], registry=registry
    )
    psi = Gauge(
        "recsys_data_quality_psi",
        "Population stability index of a column vs the baseline",
        ["table", "column"],
        registry=registry,
    )
    for c in report.checks:
        passed.labels(check=c.name, table=c.table).set(1.0 if c.passed else 0.0)
        score.labels(check=c.name, table=c.table).set(c.score)
        if c.type != "drift":
            continue
        for column, detail in c.detail.items():
            value = detail.get("psi")
            if isinstance(value, int | float):
                psi.labels(table=c.table, column=column).set(value)
    return registry


def exposition(report: QualityReport) -> str:
    """The metrics in the Prometheus text format."""
    return generate_latest(build_registry(report)).decode("utf-8")


def write_textfile(report: QualityReport, path: Path) -> None:
    """Write atomically (node-exporter's textfile collector reads ``*.prom`` files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), build_registry(report))


def push(report: QualityReport, url: str, job: str = DEFAULT_JOB, *, timeout: float = 10.0) -> None:
    """Replace this job's metrics on the Pushgateway at ``url`` (``http://host:9091`` or ``host:9091``)."""
    try:
        push_to_gateway(url, job=job, registry=build_registry(report), timeout=timeout)
    except (OSError, ValueError) as e:
        # urllib's URLError/HTTPError and prometheus_client's non-2xx answer are all OSErrors
        raise PushError(f"quality: pushing metrics to the Pushgateway at {url} failed: {e}") from e
