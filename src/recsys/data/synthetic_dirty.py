"""Dirty rows of the synthetic marketplace: corrupted or appended events and bad item prices.

Internal to :mod:`recsys.data.synthetic`, the public entry point. These stages draw from their
own random stream, so the clean rows do not depend on ``dirty_rate``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data.synthetic_behaviour import EVENT_CODES, Arrays
from recsys.data.synthetic_catalog import MS_DAY, World

DIRTY_KINDS: tuple[str, ...] = (
    "local_time", "future_ts", "out_of_order", "exact_duplicate", "near_duplicate",
    "unknown_user", "unknown_item", "price_outlier", "nonpositive_price",
)  # fmt: skip
EVENT_KINDS = DIRTY_KINDS[:7]  # the last two are item kinds


def dirty_events(w: World, ev: Arrays, req_ts: np.ndarray, rng: np.random.Generator) -> Arrays:
    """Corrupt or append a few rows per kind; ``ev["kind"]`` is 1 + the DIRTY_KINDS index."""
    n = len(ev["ts"])
    k = max(1, round(w.cfg.dirty_rate * n / len(EVENT_KINDS)))  # rows per kind
    taken = np.zeros(n, dtype=bool)
    is_type = {name: ev["etype"] == code for code, name in enumerate(EVENT_CODES)}
    lone_imp = is_type["impression"] & ~ev["clicked"]  # corrupting these breaks no funnel

    def pick(candidates: np.ndarray, kind: int) -> np.ndarray:
        pool = np.flatnonzero(candidates & ~taken)
        sel = np.sort(rng.choice(pool, size=min(k, len(pool)), replace=False))
        taken[sel] = True
        ev["kind"][sel] = kind
        return sel

    # a client on local time: every event of a few requests, ts = utc + offset
    counts = np.bincount(ev["req"], minlength=len(req_ts))
    perm = rng.permutation(len(req_ts))
    chosen = perm[: np.searchsorted(np.cumsum(counts[perm]), k) + 1]
    offsets = np.array([480, -300, 330, 60, -420])[rng.integers(0, 5, len(req_ts))]
    local = np.isin(ev["req"], chosen)
    ev["off"][local] = offsets[ev["req"][local]]
    ev["ts"][local] += ev["off"][local] * 60_000
    ev["kind"][local], taken[local] = 1, True
    sel = pick(lone_imp, 2)
    ev["ts"][sel] = w.span + rng.integers(MS_DAY, 30 * MS_DAY, len(sel))
    sel = pick(is_type["click"], 3)
    ev["ts"][sel] = req_ts[ev["req"][sel]] - rng.integers(1000, 30_000, len(sel))
    copies = [pick(~is_type["purchase"], 4), pick(~is_type["purchase"], 5)]
    copies += [pick(lone_imp, 6), pick(lone_imp, 7)]
    extra = {key: [] for key in ev}
    for kind, sel in enumerate(copies, start=4):
        ev["kind"][sel] = 0  # the originals stay clean, the copies are the dirty rows
        rows = {key: arr[sel].copy() for key, arr in ev.items()}
        rows["kind"][:] = kind
        if kind == 5:
            rows["ts"] += 500
            rows["upd"] += 500
        elif kind == 6:
            rows["user"] = w.cfg.users + np.arange(len(sel))
        elif kind == 7:
            rows["item"] = w.cfg.items + np.arange(len(sel))
        for key in ev:
            extra[key].append(rows[key])
    return {key: np.concatenate([ev[key], *extra[key]]) for key in ev}


def dirty_items(w: World, items: pd.DataFrame, rng: np.random.Generator) -> dict[str, list[str]]:
    k = max(1, round(w.cfg.dirty_rate * len(items)))
    perm = rng.permutation(len(items))
    outlier, nonpositive = np.sort(perm[:k]), np.sort(perm[k : 2 * k])
    items.loc[outlier, "price"] = np.round(items.loc[outlier, "price"] * 100, 2)
    flip = np.where(np.arange(len(nonpositive)) % 2 == 0, 0.0, -1.0)
    items.loc[nonpositive, "price"] = items.loc[nonpositive, "price"] * flip
    return {
        "price_outlier": items.loc[outlier, "item_id"].tolist(),
        "nonpositive_price": items.loc[nonpositive, "item_id"].tolist(),
    }
