"""Vectorised algorithms over event sequences: funnel ordering and near-duplicate runs.

Both work on row-aligned Series/arrays and return row-aligned results, so the rules that use
them stay small and the algorithms are testable without a whole table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# The funnel of one (request, item): the item is shown, clicked, its page viewed, carted, bought.
FUNNEL: tuple[str, ...] = ("impression", "click", "view", "add_to_cart", "purchase")
FUNNEL_RANK: dict[str, int] = {name: rank for rank, name in enumerate(FUNNEL)}
FUNNEL_STEP = pd.Timedelta(milliseconds=1)


def enforce_funnel_order(ts: pd.Series, rank: pd.Series, group: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Move each event to >= the latest earlier-stage event of its group, + 1 ms if it was before.

    Stages are processed in funnel order so a moved click also pushes the purchase behind it.
    Equal timestamps are accepted (second-resolution clients produce them legitimately).
    Returns the new ts and a bool mask of the moved rows.
    """
    ts = ts.copy()
    moved = pd.Series(False, index=ts.index)
    for stage in range(1, len(FUNNEL)):
        at_stage = rank == stage
        if not at_stage.any():
            continue
        bound = ts.where(rank < stage).groupby(group, sort=False).transform("max")
        late = at_stage & (ts < bound)
        if late.any():
            ts[late] = bound[late] + FUNNEL_STEP
            moved |= late
    return ts, moved


def to_ns(ts: pd.Series) -> np.ndarray:
    """Datetimes as int64 nanoseconds, whatever the Series' resolution."""
    return ts.to_numpy(dtype="datetime64[ns]").view("int64")


def combine_codes(keys: list[np.ndarray]) -> np.ndarray:
    """One dense int64 code per distinct combination of the integer ``keys`` (row-aligned)."""
    combined = np.zeros(len(keys[0]) if keys else 0, dtype=np.int64)
    for codes in keys:
        # re-densify after each step so the product never overflows int64
        width = int(codes.max()) + 1 if len(codes) else 1
        combined = pd.factorize(combined * width + codes.astype(np.int64))[0].astype(np.int64)
    return combined


def near_duplicate_mask(group: np.ndarray, ts_ns: np.ndarray, window_ns: int) -> np.ndarray:
    """Rows within ``window_ns`` of the previous *kept* row of the same group (row-aligned).

    Greedy in time order, ties broken by row order (the sort is stable): the first row of a
    burst is kept and becomes the anchor; later rows within the window of the anchor are
    duplicates; the first row beyond it is kept and becomes the new anchor. A row more than
    the window after its predecessor is always kept, so only rows close to their predecessor
    need the sequential scan below, which keeps this linear and fast on real data.
    """
    n = len(ts_ns)
    drop = np.zeros(n, dtype=bool)
    if n < 2:
        return drop
    order = np.lexsort((ts_ns, group))
    g = group[order]
    t = ts_ns[order]
    close = (g[1:] == g[:-1]) & (t[1:] - t[:-1] <= window_ns)
    candidates = np.flatnonzero(close) + 1
    if len(candidates) == 0:
        return drop
    t_list = t.tolist()
    drop_sorted = np.zeros(n, dtype=bool)
    anchor = 0
    previous = -2
    for i in candidates.tolist():
        if i != previous + 1:
            # the row before a run of close rows is far from its own predecessor: kept
            anchor = t_list[i - 1]
        if t_list[i] - anchor > window_ns:
            anchor = t_list[i]
        else:
            drop_sorted[i] = True
        previous = i
    drop[order] = drop_sorted
    return drop
