"""Run the configured checks over a set of tables and weight them into a 0-100 score.

Typical use in a pipeline step (the library never reads the clock or the environment)::

    config = load_quality_config(Path("config/quality.yaml"))
    previous = Baseline.load_if_exists(state_dir / "quality_baseline.json")
    report = run_quality(tables, config, baseline=previous, now=run_time)
    write_json(report, out / "quality.json"); write_html(report, out / "quality.html")
    if report.passed:
        report.baseline().save(state_dir / "quality_baseline.json")
    else:
        raise PipelineError(...)

Only a passing run's baseline should be saved: a failed run's data is what the gate rejected,
and comparing the next run against it would hide the same problem the second time round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from recsys.contracts import CONTRACTS
from recsys.quality.base import CheckContext, CheckResult, as_naive_utc, jsonable
from recsys.quality.baseline import Baseline, ColumnProfile, TableProfile, profile_column
from recsys.quality.checks import drift_kind, resolve_columns, run_check
from recsys.quality.config import QualityConfig


@dataclass
class QualityReport:
    score: float
    threshold: float
    checks: list[CheckResult]
    run_at: datetime
    # current profiles of this run's tables, which become the next run's baseline
    profiles: dict[str, TableProfile] = field(default_factory=dict)
    previous: Baseline | None = None
    as_of: datetime | None = None  # what freshness was measured against (default: run_at)

    @property
    def passed(self) -> bool:
        return self.score >= self.threshold

    @property
    def failing(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    @property
    def skipped(self) -> list[CheckResult]:
        return [c for c in self.checks if c.skipped]

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def baseline(self) -> Baseline:
        """Row counts and drift profiles of this run's tables, on top of the previous baseline.

        Tables that this run did not see keep their previous entry, so that runs over different
        tables (source tables, later feature tables) can share one baseline file. Save it only
        when ``passed`` (see the module docstring).
        """
        current = Baseline(dict(self.profiles), self.run_at)
        return self.previous.updated(current) if self.previous else current

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "score": round(self.score, 4),
                "threshold": self.threshold,
                "passed": self.passed,
                "run_at": self.run_at.isoformat(),
                "as_of": (self.as_of or self.run_at).isoformat(),
                "summary": {
                    "checks": len(self.checks),
                    "failed": len(self.failing),
                    "skipped": len(self.skipped),
                },
                "failing": [c.name for c in self.failing],
                "checks": [c.to_dict() for c in self.checks],
            }
        )


def weighted_score(results: list[CheckResult]) -> float:
    """100 * sum(weight * score) / sum(weight) over checks not skipped; 100 when nothing carries weight."""
    scored = [r for r in results if not r.skipped]
    total = sum(r.weight for r in scored)
    if total == 0:
        return 100.0
    return 100.0 * sum(r.weight * r.score for r in scored) / total


def _profiles(tables: dict[str, pd.DataFrame], config: QualityConfig) -> dict[str, TableProfile]:
    """Row counts of every table, plus a profile of each column some drift check watches."""
    out = {
        name: TableProfile(rows=len(df), filled={str(c): int(df[c].notna().sum()) for c in df.columns})
        for name, df in tables.items()
    }
    for spec in config.checks:
        df = tables.get(spec.table)
        if spec.type != "drift" or df is None:
            continue
        columns: dict[str, ColumnProfile] = out[spec.table].columns
        for column in resolve_columns(spec, df):
            if column not in df.columns:
                continue
            kind = drift_kind(df[column], spec.params)
            if kind is not None:
                columns[column] = profile_column(df[column], kind, config.psi.bins, config.psi.max_categories)
    return out


def optional_columns(table: str) -> frozenset[str]:
    """Columns of a source table that its data contract lets be null (none for other tables)."""
    contract = CONTRACTS.get(table)
    return frozenset(c.name for c in contract.table.columns if c.nullable) if contract else frozenset()


def run_quality(
    tables: dict[str, pd.DataFrame],
    config: QualityConfig,
    *,
    baseline: Baseline | None,
    now: datetime,
    ran_at: datetime | None = None,
) -> QualityReport:
    """Run every configured check; ``now`` is the run time (naive UTC, or aware and converted).

    ``baseline`` is the previous passing run's (``None`` on the first run: volume and drift
    checks then pass). Checks on tables absent from ``tables`` fail with a message.
    """
    run_at = as_naive_utc(now)
    results = [
        run_check(
            spec,
            tables.get(spec.table),
            CheckContext(spec.table, run_at, baseline, config.psi, optional_columns(spec.table)),
        )
        for spec in config.checks
    ]
    return QualityReport(
        score=weighted_score(results),
        threshold=config.threshold,
        checks=results,
        run_at=as_naive_utc(ran_at).to_pydatetime() if ran_at else run_at.to_pydatetime(),
        profiles=_profiles(tables, config),
        previous=baseline,
        as_of=run_at.to_pydatetime(),
    )
