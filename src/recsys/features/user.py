"""User features of FeatureEngineV2: activity, rates, recency, price taste, preferences."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.features.hashing import MAX_TAGS
from recsys.features.lifetime import Lifetime
from recsys.features.prepare import CATEGORY_DIM, INDUSTRY_DIM, PRICE_BANDS, TAG_DIM, Prepared
from recsys.features.registry import Smoothing
from recsys.features.windows import Windowed, daily, global_rate, normalize_rows, smoothed_rate

EVENT_TYPES = ("impression", "view", "click", "add_to_cart", "purchase")
WINDOWS = (1, 7, 30)


class UserAggregates:
    """Daily per-user aggregates, computed once for all snapshots."""

    def __init__(self, prep: Prepared) -> None:
        ev = prep.events
        self.prep = prep
        self.index = prep.users.index

        def windowed(frame: pd.DataFrame, by: str | None = None, value: str | None = None) -> Windowed:
            return Windowed(daily(frame, "user_id", [by] if by else None, value), "user_id", self.index, by)

        self.by_type = {t: windowed(ev[ev["event_type"] == t]) for t in EVENT_TYPES}
        self.any = windowed(ev)
        purchases = ev[ev["event_type"] == "purchase"]
        self.gmv = windowed(purchases.assign(value=purchases["value"].fillna(0.0)), value="value")
        clicks = ev[ev["event_type"] == "click"]
        self.click_lp = windowed(clicks, value="log_price")
        self.click_lp2 = windowed(clicks.assign(lp2=clicks["log_price"] ** 2), value="lp2")
        self.purchase_lp = windowed(purchases, value="log_price")
        self.band = windowed(clicks, by="band")
        self.category = windowed(clicks, by="cat_code")
        self.industry = windowed(clicks, by="ind_code")
        tags = prep.item_tags[clicks["item_row"].to_numpy()]
        exploded = pd.DataFrame(
            {
                "user_id": np.repeat(clicks["user_id"].to_numpy(), MAX_TAGS),
                "a": np.repeat(clicks["a"].to_numpy(), MAX_TAGS),
                "tag": tags.reshape(-1),
            }
        )
        self.tags = windowed(exploded[exploded["tag"] >= 0], by="tag")
        self.lifetime = Lifetime(prep, "user_id", self.index)

    def snapshot(self, k: int, smoothing: Smoothing) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        counts = {(t, w): self.by_type[t].sum(k, w) for t in EVENT_TYPES for w in WINDOWS}
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
        out["user_gmv_7d"] = self.gmv.sum(k, 7)
        out["user_gmv_30d"] = self.gmv.sum(k, 30)
        out["user_active_days_30d"] = self.any.active_buckets(k, 30)
        out["user_days_since_last_event"] = self.any.days_since(k)
        out["user_days_since_last_click"] = self.by_type["click"].days_since(k)
        out["user_days_since_last_purchase"] = self.by_type["purchase"].days_since(k)
        at = self.prep.snapshot_time(k)
        tenure = (at - self.prep.users["created_at"]).dt.total_seconds().to_numpy() / 86400.0
        out["user_tenure_days"] = np.clip(tenure, 0, None)
        out.update(self.lifetime.snapshot(k, smoothing.ctr_prior_weight, "user"))

        lp_sum = self.click_lp.sum(k, 30)
        lp2_sum = self.click_lp2.sum(k, 30)
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
        p_sum = self.purchase_lp.sum(k, 30)
        out["user_purchase_log_price_mean"] = np.where(buys > 0, p_sum / np.where(buys > 0, buys, 1), mean)

        bands = normalize_rows(self.band.distribution(PRICE_BANDS, k, 30), 0.2)
        for b in range(PRICE_BANDS):
            out[f"user_price_band_pref_{b}"] = bands[:, b]
        cat_counts = self.category.distribution(CATEGORY_DIM, k, 30)
        cat = normalize_rows(cat_counts, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["user_category_entropy_30d"] = -np.nansum(np.where(cat > 0, cat * np.log(cat), 0.0), axis=1)
        out["user_top_category_share_30d"] = cat.max(axis=1)
        out["user_industry_code"] = self.prep.users["ind_code"].to_numpy(dtype=np.float64)
        out["user_region_code"] = self.prep.users["region_code"].to_numpy(dtype=np.float64)
        out["user_category_pref"] = cat
        ind_counts = self.industry.distribution(INDUSTRY_DIM, k, 30)
        out["user_industry_pref"] = normalize_rows(ind_counts, 0.0)
        tag_counts = self.tags.distribution(TAG_DIM, k, 30)
        out["user_tag_pref"] = normalize_rows(tag_counts, 0.0)
        return out
