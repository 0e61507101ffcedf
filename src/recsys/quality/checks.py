"""The check types, registered in ``CHECKS``: a new type is one class here plus one entry.

A check class declares its parameters (``Params``), how many columns it takes
(``column_mode``: none / one / many) and what ``columns: "*"`` expands to (``star``). Column
checks implement ``check_column`` and get one outcome per column, scored as the share of
columns that pass (partial credit over many feature columns); table checks override ``run``.
A missing table or column fails the check with a message instead of raising.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from recsys.quality.base import Check, CheckContext, CheckResult, Outcome, jsonable, skipped
from recsys.quality.baseline import column_kind, compare, numeric_values
from recsys.quality.config import CheckParams, CheckSpec

__all__ = ["CHECKS", "Check", "CheckContext", "CheckResult", "Outcome", "resolve_columns", "run_check"]


class NullRateParams(CheckParams):
    max: float = Field(0.0, ge=0, le=1, description="highest allowed share of nulls")


class NullRate(Check):
    Params = NullRateParams

    @classmethod
    def check_column(cls, series: pd.Series, params: Any, ctx: CheckContext) -> Outcome:
        rate = float(series.isna().mean()) if len(series) else 0.0
        ok = rate <= params.max
        return Outcome(
            ok, {"null_rate": round(rate, 6)}, f"null rate {rate:.4f} {'<=' if ok else '>'} {params.max}"
        )


class RangeParams(CheckParams):
    min: float | None = Field(None, description="values must be >= min")
    max: float | None = Field(None, description="values must be <= max")
    gt: float | None = Field(None, description="values must be > gt")
    lt: float | None = Field(None, description="values must be < lt")
    max_violations: float = Field(0.0, ge=0, le=1, description="allowed share of violating rows")

    @model_validator(mode="after")
    def _some_bound(self) -> RangeParams:
        if self.min is None and self.max is None and self.gt is None and self.lt is None:
            raise ValueError("give at least one of min, max, gt, lt")
        return self


class Range(Check):
    """Nulls are not violations here (null_rate watches them); shares are of non-null rows."""

    Params = RangeParams
    star = "numeric"

    @classmethod
    def check_column(cls, series: pd.Series, params: Any, ctx: CheckContext) -> Outcome:
        if len(series) == 0:  # an empty table reads back with object columns: no dtype to judge
            return skipped("table is empty")
        if column_kind(series) != "numeric":
            return Outcome(False, {"dtype": str(series.dtype)}, f"column is not numeric ({series.dtype})")
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        values = values[~np.isnan(values)]
        bad = np.zeros(values.size, dtype=bool)
        for bound, violates in (
            (params.min, lambda b: values < b),
            (params.max, lambda b: values > b),
            (params.gt, lambda b: values <= b),
            (params.lt, lambda b: values >= b),
        ):
            if bound is not None:
                bad |= violates(bound)
        share = float(bad.mean()) if values.size else 0.0
        observed: dict[str, Any] = {"violations": int(bad.sum()), "violation_share": round(share, 6)}
        if values.size:
            observed.update(min=float(values.min()), max=float(values.max()))
        ok = share <= params.max_violations
        return Outcome(ok, observed, f"{int(bad.sum())} of {values.size} values out of range ({share:.4f})")


class UniqueParams(CheckParams):
    max_duplicates: float = Field(0.0, ge=0, le=1, description="allowed share of duplicate rows")


class Unique(Check):
    """Several columns form one composite key; ``"*"`` looks for fully duplicated rows."""

    Params = UniqueParams

    @classmethod
    def run(cls, df: pd.DataFrame, columns: list[str], params: Any, ctx: CheckContext) -> Outcome:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            return Outcome(False, {"missing": missing}, f"column(s) {', '.join(missing)} missing")
        dups = int(df.duplicated(subset=columns).sum()) if len(df) else 0
        share = dups / len(df) if len(df) else 0.0
        ok = share <= params.max_duplicates
        return Outcome(
            ok, {"duplicates": dups, "duplicate_share": round(share, 6)}, f"{dups} duplicate key(s)"
        )


class FreshnessParams(CheckParams):
    max_age_hours: float = Field(gt=0, description="newest timestamp must be at most this old")


class Freshness(Check):
    Params = FreshnessParams
    column_mode = "one"

    @classmethod
    def check_column(cls, series: pd.Series, params: Any, ctx: CheckContext) -> Outcome:
        if len(series) == 0:  # no rows is the volume checks' business; freshness has nothing to date
            return skipped("table is empty")
        with warnings.catch_warnings():  # format inference on string columns warns
            warnings.simplefilter("ignore")
            ts = pd.to_datetime(series, errors="coerce", utc=True).dt.tz_localize(None)
        newest = ts.max()
        if pd.isna(newest):
            return Outcome(False, {"newest": None}, "no timestamps")
        age = (ctx.now - newest).total_seconds() / 3600.0
        ok = age <= params.max_age_hours
        observed = {"newest": newest.isoformat(), "age_hours": round(age, 3)}
        # historical data (a public dataset, a backfill) is old against the wall clock, not stale
        hint = "" if ok or age < 24 * 30 else " (historical data? run as of it: --as-of latest)"
        return Outcome(ok, observed, f"newest {newest.isoformat()} is {age:.1f} h old{hint}")


class VolumeChangeParams(CheckParams):
    max_change: float = Field(gt=0, description="largest allowed |rows - baseline| / baseline")


class VolumeChange(Check):
    Params = VolumeChangeParams
    column_mode = "none"

    @classmethod
    def run(cls, df: pd.DataFrame, columns: list[str], params: Any, ctx: CheckContext) -> Outcome:
        rows = len(df)
        base = ctx.baseline.rows(ctx.table) if ctx.baseline else None
        if base is None:
            return Outcome(True, {"rows": rows, "baseline_rows": None}, "no baseline yet")
        if base == 0:
            ok = rows == 0
            return Outcome(
                ok,
                {"rows": rows, "baseline_rows": 0, "change": 0.0 if ok else None},
                f"{rows} rows vs an empty baseline",
            )
        change = (rows - base) / base
        ok = abs(change) <= params.max_change
        observed = {"rows": rows, "baseline_rows": base, "change": round(change, 6)}
        return Outcome(ok, observed, f"{rows} rows vs {base} ({change:+.1%})")


class DriftParams(CheckParams):
    kind: Literal["auto", "numeric", "categorical"] = "auto"
    max_psi: float | None = Field(None, gt=0, description="overrides psi.fail for this check")


class Drift(Check):
    Params = DriftParams
    star = "numeric"

    @classmethod
    def check_column(cls, series: pd.Series, params: Any, ctx: CheckContext) -> Outcome:
        kind = drift_kind(series, params)
        if kind is None:
            return Outcome(False, {"dtype": str(series.dtype)}, "drift is not computed on datetime columns")
        base = ctx.baseline.column(ctx.table, str(series.name)) if ctx.baseline else None
        if base is None or base.count == 0:
            return Outcome(True, {"psi": None}, "no baseline yet")
        if base.kind != kind:
            return Outcome(False, {"kind": kind}, f"column was {base.kind} in the baseline, now {kind}")
        current_count = numeric_values(series).size if kind == "numeric" else int(series.notna().sum())
        if current_count == 0:
            return Outcome(False, {"psi": None}, "no non-null values")
        cmp = compare(base, series)
        limit = params.max_psi or ctx.psi.fail
        ok = cmp.psi < limit
        level = "fail" if not ok else "warn" if cmp.psi >= ctx.psi.warn else "ok"
        detail = {
            str(series.name): {
                "psi": cmp.psi,
                "level": level,
                "labels": cmp.labels,
                "baseline": cmp.baseline,
                "current": cmp.current,
            }
        }
        note = {"fail": f">= {limit}", "warn": f"warning, >= {ctx.psi.warn}", "ok": f"< {limit}"}[level]
        return Outcome(
            ok, {"psi": round(cmp.psi, 6), "level": level}, f"PSI {cmp.psi:.4f} ({note})", detail=detail
        )


def drift_kind(series: pd.Series, params: Any) -> Literal["numeric", "categorical"] | None:
    kind = column_kind(series)
    if kind is None or params.kind == "auto":
        return kind
    return params.kind


class RowCountParams(CheckParams):
    min: int = Field(1, ge=0)
    max: int | None = Field(None, ge=0)


class RowCount(Check):
    Params = RowCountParams
    column_mode = "none"

    @classmethod
    def run(cls, df: pd.DataFrame, columns: list[str], params: Any, ctx: CheckContext) -> Outcome:
        rows = len(df)
        ok = rows >= params.min and (params.max is None or rows <= params.max)
        return Outcome(ok, {"rows": rows}, f"{rows} rows")


class AcceptedValuesParams(CheckParams):
    values: list[str | int | float | bool] = Field(min_length=1)
    max_violations: float = Field(0.0, ge=0, le=1, description="allowed share of other values")


class AcceptedValues(Check):
    Params = AcceptedValuesParams

    @classmethod
    def check_column(cls, series: pd.Series, params: Any, ctx: CheckContext) -> Outcome:
        values = series.dropna()
        bad = ~values.isin(params.values)
        share = float(bad.mean()) if len(values) else 0.0
        examples = sorted({str(v) for v in values[bad].unique()[:5]})
        ok = share <= params.max_violations
        observed = {"violations": int(bad.sum()), "violation_share": round(share, 6), "examples": examples}
        return Outcome(
            ok, observed, f"{int(bad.sum())} value(s) not accepted" + (f": {examples}" if examples else "")
        )


CHECKS: dict[str, type[Check]] = {
    "null_rate": NullRate,
    "range": Range,
    "unique": Unique,
    "freshness": Freshness,
    "volume_change": VolumeChange,
    "drift": Drift,
    "row_count": RowCount,
    "accepted_values": AcceptedValues,
}


def resolve_columns(spec: CheckSpec, df: pd.DataFrame) -> list[str]:
    """The configured columns, ``"*"`` expanded on ``df`` (numeric means not bool or datetime)."""
    if spec.column is not None:
        return [spec.column]
    if spec.columns is None:
        return []
    if spec.columns != "*":
        return list(spec.columns)
    if CHECKS[spec.type].star == "all":
        return [str(c) for c in df.columns]
    return [str(c) for c in df.columns if column_kind(df[c]) == "numeric"]


def run_check(spec: CheckSpec, df: pd.DataFrame | None, ctx: CheckContext) -> CheckResult:
    check = CHECKS[spec.type]
    expected = spec.params.model_dump(exclude_none=True)

    def result(outcome: Outcome, columns: list[str]) -> CheckResult:
        score = outcome.score if outcome.score is not None else float(outcome.passed)
        return CheckResult(
            spec.name,
            spec.table,
            spec.type,
            columns,
            spec.weight,
            outcome.passed,
            score,
            jsonable(outcome.observed),
            jsonable(expected),
            outcome.message,
            jsonable(outcome.detail),
            spec.column_label,
            outcome.skipped,
        )

    if df is None:
        return result(Outcome(False, {"missing_table": True}, f"table {spec.table!r} is missing"), [])
    columns = resolve_columns(spec, df)
    if check.column_mode != "none" and not columns:
        return result(Outcome(False, {"columns": 0}, "no columns match '*'"), [])
    try:
        outcome = check.run(df, columns, spec.params, ctx)
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        # odd data (mixed types, ...) fails this check; the gate still reports every other one
        outcome = Outcome(False, {"error": type(e).__name__}, f"check could not run: {e}")
    return result(outcome, columns)
