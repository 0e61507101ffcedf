"""User features of FeatureEngineV2: activity, rates, recency, price taste, preferences."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.features.hashing import MAX_TAGS
from recsys.features.prepare import CATEGORY_DIM, INDUSTRY_DIM, PRICE_BANDS, TAG_DIM, Prepared
from recsys.features.registry import Smoothing
from recsys.features.windows import (
    daily,
    days_since,
    global_rate,
    normalize_rows,
    smoothed_rate,
    window,
    window_distribution,
    window_sum,
)

EVENT_TYPES = ("impression", "view", "click", "add_to_cart", "purchase")
WINDOWS = (1, 7, 30)


class UserAggregates:
    """Daily per-user aggregates, computed once for all snapshots."""

    def __init__(self, prep: Prepared) -> None:
        ev = prep.events
        self.prep = prep
        self.index = prep.users.index
        self.by_type = {t: daily(ev[ev["event_type"] == t], "user_id") for t in EVENT_TYPES}
        self.any = daily(ev, "user_id")
        purchases = ev[ev["event_type"] == "purchase"]
        self.gmv = daily(purchases.assign(value=purchases["value"].fillna(0.0)), "user_id", value="value")
        clicks = ev[ev["event_type"] == "click"]
        self.click_lp = daily(clicks, "user_id", value="log_price")
        self.click_lp2 = daily(clicks.assign(lp2=clicks["log_price"] ** 2), "user_id", value="lp2")
        self.purchase_lp = daily(purchases, "user_id", value="log_price")
        self.band = daily(clicks, "user_id", by=["band"])
        self.category = daily(clicks, "user_id", by=["cat_code"])
        self.industry = daily(clicks, "user_id", by=["ind_code"])
        tags = prep.item_tags[clicks["item_row"].to_numpy()]
        exploded = pd.DataFrame(
            {
                "user_id": np.repeat(clicks["user_id"].to_numpy(), MAX_TAGS),
                "a": np.repeat(clicks["a"].to_numpy(), MAX_TAGS),
                "tag": tags.reshape(-1),
            }
        )
        self.tags = daily(exploded[exploded["tag"] >= 0], "user_id", by=["tag"])

    def snapshot(self, k: int, smoothing: Smoothing) -> dict[str, np.ndarray]:
        idx = self.index
        out: dict[str, np.ndarray] = {}
        counts = {
            (t, w): window_sum(self.by_type[t], "user_id", k, w, idx) for t in EVENT_TYPES for w in WINDOWS
        }
        for t in ("impression", "click", "add_to_cart", "purchase"):
            for w in WINDOWS:
                out[f"user_{t}_count_{w}d"] = counts[(t, w)]
        out["user_view_count_30d"] = counts[("view", 30)]

        clicks30, impr30 = counts[("click", 30)], counts[("impression", 30)]
        g_ctr = global_rate(clicks30.sum(), impr30.sum())
        for w in WINDOWS:
            out[f"user_ctr_{w}d"] = smoothed_rate(
                counts[("click", w)], counts[("impression", w)], g_ctr, smoothing.ctr_prior_weight
            )
        g_cvr = global_rate(counts[("purchase", 30)].sum(), clicks30.sum())
        out["user_cvr_30d"] = smoothed_rate(
            counts[("purchase", 30)], clicks30, g_cvr, smoothing.cvr_prior_weight
        )
        g_atc = global_rate(counts[("add_to_cart", 30)].sum(), clicks30.sum())
        out["user_add_to_cart_rate_30d"] = smoothed_rate(
            counts[("add_to_cart", 30)], clicks30, g_atc, smoothing.cvr_prior_weight
        )
        out["user_gmv_7d"] = window_sum(self.gmv, "user_id", k, 7, idx)
        out["user_gmv_30d"] = window_sum(self.gmv, "user_id", k, 30, idx)
        active = window(self.any, k, 30).groupby("user_id", sort=False)["a"].nunique()
        out["user_active_days_30d"] = active.reindex(idx, fill_value=0).to_numpy(dtype=np.float64)
        out["user_days_since_last_event"] = days_since(self.any, "user_id", k, idx)
        out["user_days_since_last_click"] = days_since(self.by_type["click"], "user_id", k, idx)
        out["user_days_since_last_purchase"] = days_since(self.by_type["purchase"], "user_id", k, idx)
        at = self.prep.snapshot_time(k)
        tenure = (at - self.prep.users["created_at"]).dt.total_seconds().to_numpy() / 86400.0
        out["user_tenure_days"] = np.clip(tenure, 0, None)

        lp_sum = window_sum(self.click_lp, "user_id", k, 30, idx)
        lp2_sum = window_sum(self.click_lp2, "user_id", k, 30, idx)
        has = clicks30 > 0
        fallback = (
            float(lp_sum.sum() / clicks30.sum())
            if clicks30.sum() > 0
            else float(self.prep.items["log_price"].mean())
        )
        mean = np.where(has, lp_sum / np.where(has, clicks30, 1), fallback)
        var = np.where(has, lp2_sum / np.where(has, clicks30, 1) - mean**2, 0.0)
        out["user_click_log_price_mean"] = mean
        out["user_click_log_price_std"] = np.sqrt(np.clip(var, 0, None))
        buys = counts[("purchase", 30)]
        p_sum = window_sum(self.purchase_lp, "user_id", k, 30, idx)
        out["user_purchase_log_price_mean"] = np.where(buys > 0, p_sum / np.where(buys > 0, buys, 1), mean)

        bands = normalize_rows(
            window_distribution(self.band, "user_id", "band", PRICE_BANDS, k, 30, idx), 0.2
        )
        for b in range(PRICE_BANDS):
            out[f"user_price_band_pref_{b}"] = bands[:, b]
        cat_counts = window_distribution(self.category, "user_id", "cat_code", CATEGORY_DIM, k, 30, idx)
        cat = normalize_rows(cat_counts, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["user_category_entropy_30d"] = -np.nansum(np.where(cat > 0, cat * np.log(cat), 0.0), axis=1)
        out["user_top_category_share_30d"] = cat.max(axis=1)
        out["user_industry_code"] = self.prep.users["ind_code"].to_numpy(dtype=np.float64)
        out["user_region_code"] = self.prep.users["region_code"].to_numpy(dtype=np.float64)
        out["user_category_pref"] = cat
        ind_counts = window_distribution(self.industry, "user_id", "ind_code", INDUSTRY_DIM, k, 30, idx)
        out["user_industry_pref"] = normalize_rows(ind_counts, 0.0)
        tag_counts = window_distribution(self.tags, "user_id", "tag", TAG_DIM, k, 30, idx)
        out["user_tag_pref"] = normalize_rows(tag_counts, 0.0)
        return out
