"""Daily aggregates and windowed sums: the point-in-time machinery of FeatureEngineV2.

Snapshot ``k`` of a computation ``as_of`` is taken at ``as_of - k days`` and sees only events
strictly before it. An event's *age bucket* is ``ceil((as_of - ts) / 1 day) - 1``; snapshot ``k``'s
``w``-day window is the buckets ``k .. k+w-1``. Aggregating once per (entity, bucket) and then
summing buckets per snapshot keeps many snapshots cheap.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

DAY = timedelta(days=1)
RECENCY_HORIZON_DAYS = 90
NO_RECENCY = 365.0


def age_buckets(ts: pd.Series, as_of: datetime) -> np.ndarray:
    """Age bucket per event; -1 for events at or after ``as_of`` (not strictly before it)."""
    delta = (pd.Timestamp(as_of) - pd.to_datetime(ts)).dt.total_seconds().to_numpy()
    # ceil - 1: an event exactly at a snapshot instant belongs to the next-newer bucket
    return np.where(delta > 0, np.ceil(delta / DAY.total_seconds()) - 1, -1).astype(np.int64)


def daily(
    frame: pd.DataFrame, key: str, by: list[str] | None = None, value: str | None = None
) -> pd.DataFrame:
    """Sum (or count) per (key, bucket[, by...]); columns key, a, [by...], v."""
    cols = [key, "a", *(by or [])]
    grouped = frame.groupby(cols, sort=False, observed=True)
    out = grouped[value].sum() if value else grouped.size()
    return out.rename("v").reset_index()


def window(agg: pd.DataFrame, k: int, w: int) -> pd.DataFrame:
    """Rows of a daily aggregate inside snapshot k's w-day window."""
    a = agg["a"].to_numpy()
    return agg[(a >= k) & (a < k + w)]


def window_sum(agg: pd.DataFrame, key: str, k: int, w: int, index: pd.Index) -> np.ndarray:
    """Per entity of ``index``: the sum of ``v`` in the window (0 when absent)."""
    part = window(agg, k, w)
    sums = part.groupby(key, sort=False)["v"].sum()
    return sums.reindex(index, fill_value=0).to_numpy(dtype=np.float64)


def window_distribution(
    agg: pd.DataFrame, key: str, col: str, dim: int, k: int, w: int, index: pd.Index
) -> np.ndarray:
    """(len(index), dim) counts of ``col`` buckets in the window."""
    part = window(agg, k, w)
    out = np.zeros((len(index), dim), dtype=np.float64)
    if part.empty:
        return out
    sums = part.groupby([key, col], sort=False)["v"].sum().reset_index()
    rows = index.get_indexer(sums[key])
    ok = rows >= 0
    np.add.at(out, (rows[ok], sums[col].to_numpy(dtype=np.int64)[ok]), sums["v"].to_numpy()[ok])
    return out


def days_since(agg: pd.DataFrame, key: str, k: int, index: pd.Index) -> np.ndarray:
    """Days from snapshot k back to the newest bucket with activity, NO_RECENCY when none."""
    part = window(agg, k, RECENCY_HORIZON_DAYS)
    newest = part.groupby(key, sort=False)["a"].min() - k
    return newest.reindex(index).fillna(NO_RECENCY).to_numpy(dtype=np.float64)


def normalize_rows(counts: np.ndarray, default: float) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(totals > 0, counts / np.where(totals > 0, totals, 1), default)
    return shares


def smoothed_rate(hits: np.ndarray, trials: np.ndarray, prior: float, weight: float) -> np.ndarray:
    """Beta-prior smoothing: (hits + weight * prior) / (trials + weight)."""
    return (hits + weight * prior) / (trials + weight)


def global_rate(hits: float, trials: float) -> float:
    return float(min(hits / trials, 1.0)) if trials > 0 else 0.0
