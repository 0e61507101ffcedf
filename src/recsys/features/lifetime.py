"""Lifetime features: what a user or an item did over all of its history, not a recent window.

The 1/7/30-day windows describe a busy marketplace; on data that spans years (ratings, slow
catalogues) they are mostly zero, and what is left to say is how many people an item reached,
how many of them liked it, how it is rated, and the same for the user. Point-in-time like the
rest: snapshot ``k`` counts only events in age buckets ``>= k``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.features.prepare import Prepared
from recsys.features.windows import Windowed

ALL = 10**9  # a window wider than any history, in days
POSITIVE = ("click", "add_to_cart", "purchase")
RATING_PRIOR = 10.0  # pseudo-ratings at the global mean in a shrunk mean


def _first_touch(events: pd.DataFrame, key: str, other: str) -> pd.DataFrame:
    """One row per (key, other) pair: the age bucket of its oldest event (visible from then on)."""
    if events.empty:
        return pd.DataFrame({key: pd.Series(dtype=object), "a": pd.Series(dtype=np.int64), "v": 1})
    first = events.groupby([key, other], sort=False, observed=True)["a"].max().rename("a").reset_index()
    return first.groupby([key, "a"], sort=False).size().rename("v").reset_index()


class Lifetime:
    """Distinct partners, positive partners and ratings per entity (user or item), all time."""

    def __init__(self, prep: Prepared, key: str, index: pd.Index) -> None:
        ev = prep.lifetime
        other = "item_id" if key == "user_id" else "user_id"
        inter = ev[ev["event_type"] != "impression"]
        self.index = index
        self.partners = Windowed(_first_touch(inter, key, other), key, index)
        self.positive = Windowed(
            _first_touch(inter[inter["event_type"].isin(POSITIVE)], key, other), key, index
        )
        rated = inter[(inter["event_type"] == "view") & inter["value"].notna()]
        daily = (
            rated.groupby([key, "a"], sort=False, observed=True)["value"].agg(["sum", "size"]).reset_index()
        )
        self.rating_sum = Windowed(daily.rename(columns={"sum": "v"})[[key, "a", "v"]], key, index)
        self.rating_count = Windowed(daily.rename(columns={"size": "v"})[[key, "a", "v"]], key, index)

    def snapshot(self, k: int, prior_weight: float, prefix: str) -> dict[str, np.ndarray]:
        n = self.partners.sum(k, ALL)
        pos = self.positive.sum(k, ALL)
        total = n.sum()
        share = float(pos.sum() / total) if total > 0 else 0.0
        r_sum, r_n = self.rating_sum.sum(k, ALL), self.rating_count.sum(k, ALL)
        mean = float(r_sum.sum() / r_n.sum()) if r_n.sum() > 0 else 0.0
        partner = "users" if prefix == "item" else "items"
        return {
            f"{prefix}_{partner}_all": np.log1p(n),
            f"{prefix}_positive_share_all": (pos + prior_weight * share) / (n + prior_weight),
            f"{prefix}_rating_mean_all": (r_sum + RATING_PRIOR * mean) / (r_n + RATING_PRIOR),
        }
