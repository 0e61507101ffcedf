"""What a check returns and the base class of the check types (registered in ``checks.py``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from recsys.quality.baseline import Baseline
from recsys.quality.config import CheckParams, ColumnMode, PsiConfig

_SHOWN_COLUMNS = 10  # failing columns listed in a multi-column result; the rest are counted


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN/inf as None, timestamps as ISO strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def as_naive_utc(ts: datetime | pd.Timestamp) -> pd.Timestamp:
    out = pd.Timestamp(ts)
    return out.tz_convert("UTC").tz_localize(None) if out.tzinfo is not None else out


@dataclass(frozen=True)
class CheckContext:
    table: str
    now: pd.Timestamp  # naive UTC as-of time of the run
    baseline: Baseline | None
    psi: PsiConfig
    optional: frozenset[str] = frozenset()  # the table's columns the data contract lets be null

    def not_applicable(self, series: pd.Series) -> Outcome | None:
        """A skip, when ``series`` is an optional column with no value at all that had none in
        the baseline either: the source does not have it (MovieLens has no prices), which is
        not a quality problem. An optional column that loses the values it had still fails."""
        column = str(series.name)
        if column not in self.optional or len(series) == 0 or series.notna().any():
            return None
        before = self.baseline.filled(self.table, column) if self.baseline else None
        if before:
            return None
        return skipped(
            f"not applicable: {self.table}.{column} has no value in the whole source "
            "(optional in the data contract)"
        )


@dataclass
class CheckResult:
    name: str
    table: str
    type: str
    columns: list[str]
    weight: float
    passed: bool
    score: float
    observed: dict[str, Any]
    expected: dict[str, Any]
    message: str
    # per column data for charts and metrics, e.g. drift histograms and PSI
    detail: dict[str, dict[str, Any]] = field(default_factory=dict)
    column: str | None = None  # as configured: "price", "a,b" or "*"
    # nothing to judge (e.g. a range over an empty table): reported with its reason, not scored
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "name": self.name,
                "table": self.table,
                "type": self.type,
                "column": self.column,
                "columns": self.columns,
                "weight": self.weight,
                "passed": self.passed,
                "skipped": self.skipped,
                "score": self.score,
                "observed": self.observed,
                "expected": self.expected,
                "message": self.message,
                "detail": self.detail,
            }
        )


@dataclass
class Outcome:
    passed: bool
    observed: dict[str, Any]
    message: str
    score: float | None = None  # None: 1.0 if passed else 0.0
    detail: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: bool = False


def skipped(reason: str) -> Outcome:
    """Nothing to check: passes, carries no weight in the score, says why."""
    return Outcome(True, {"skipped": True}, f"skipped: {reason}", skipped=True)


class Check:
    Params: ClassVar[type[CheckParams]] = CheckParams
    column_mode: ClassVar[ColumnMode] = "many"
    star: ClassVar[Literal["all", "numeric"]] = "all"

    @classmethod
    def check_column(cls, series: pd.Series, params: Any, ctx: CheckContext) -> Outcome:
        raise NotImplementedError(f"{cls.__name__} checks whole tables")

    @classmethod
    def run(cls, df: pd.DataFrame, columns: list[str], params: Any, ctx: CheckContext) -> Outcome:
        outcomes = {
            c: (ctx.not_applicable(df[c]) or cls.check_column(df[c], params, ctx))
            if c in df.columns
            else missing_column(c)
            for c in columns
        }
        return combine(outcomes)


def missing_column(column: str) -> Outcome:
    return Outcome(False, {"missing": True}, f"column {column!r} is missing")


def combine(outcomes: dict[str, Outcome]) -> Outcome:
    detail = {c: o.detail[c] for c, o in outcomes.items() if c in o.detail}
    if len(outcomes) == 1:
        ((column, only),) = outcomes.items()
        return Outcome(only.passed, only.observed, only.message, detail=detail, skipped=only.skipped)
    if all(o.skipped for o in outcomes.values()):
        return skipped(next(iter(outcomes.values())).message.removeprefix("skipped: "))
    failed = {c: o for c, o in outcomes.items() if not o.passed}
    observed: dict[str, Any] = {"columns": len(outcomes), "failed": len(failed)}
    if failed:
        observed["failing"] = {c: o.observed for c, o in list(failed.items())[:_SHOWN_COLUMNS]}
        shown = "; ".join(f"{c}: {o.message}" for c, o in list(failed.items())[:5])
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        message = f"{len(failed)}/{len(outcomes)} columns fail: {shown}{more}"
    else:
        message = f"all {len(outcomes)} columns pass"
    score = 1.0 - len(failed) / len(outcomes)
    return Outcome(not failed, observed, message, score=score, detail=detail)
