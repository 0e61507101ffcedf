"""Item features of FeatureEngineV2: popularity, rates, trend, price position, attributes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.features.lifetime import Lifetime
from recsys.features.prepare import Prepared
from recsys.features.registry import Smoothing
from recsys.features.windows import Windowed, daily, global_rate, smoothed_rate

WINDOWS = (1, 7, 30)


class ItemAggregates:
    """Daily per-item aggregates, computed once for all snapshots."""

    def __init__(self, prep: Prepared) -> None:
        ev = prep.events
        self.prep = prep
        self.index = prep.items.index
        types = ("impression", "click", "add_to_cart", "purchase")
        self.by_type = {
            t: Windowed(daily(ev[ev["event_type"] == t], "item_id"), "item_id", self.index) for t in types
        }
        purchases = ev[ev["event_type"] == "purchase"]
        gmv = daily(purchases.assign(value=purchases["value"].fillna(0.0)), "item_id", value="value")
        self.gmv = Windowed(gmv, "item_id", self.index)
        self.lifetime = Lifetime(prep, "item_id", self.index)

    def snapshot(self, k: int, smoothing: Smoothing) -> dict[str, np.ndarray]:
        static = self.prep.items
        out: dict[str, np.ndarray] = {}
        c = {(t, w): self.by_type[t].sum(k, w) for t in self.by_type for w in WINDOWS}
        for t in ("impression", "click", "purchase"):
            for w in WINDOWS:
                out[f"item_{t}_count_{w}d"] = c[(t, w)]
        out["item_add_to_cart_count_7d"] = c[("add_to_cart", 7)]
        out["item_add_to_cart_count_30d"] = c[("add_to_cart", 30)]
        g_ctr = global_rate(c[("click", 30)].sum(), c[("impression", 30)].sum())
        for w in WINDOWS:
            out[f"item_ctr_{w}d"] = smoothed_rate(
                c[("click", w)], c[("impression", w)], g_ctr, smoothing.ctr_prior_weight
            )
        g_cvr = global_rate(c[("purchase", 30)].sum(), c[("click", 30)].sum())
        out["item_cvr_30d"] = smoothed_rate(
            c[("purchase", 30)], c[("click", 30)], g_cvr, smoothing.cvr_prior_weight
        )
        out["item_gmv_30d"] = self.gmv.sum(k, 30)
        clicks7 = pd.Series(c[("click", 7)])
        out["item_popularity_pct_7d"] = clicks7.rank(pct=True, method="average").to_numpy()
        out["item_trend_7d_30d"] = (c[("click", 7)] + 1.0) / (c[("click", 30)] * 7.0 / 30.0 + 1.0)
        out["item_days_since_last_click"] = self.by_type["click"].days_since(k)
        out.update(self.lifetime.snapshot(k, smoothing.ctr_prior_weight, "item"))
        out["item_popularity_pct_all"] = pd.Series(out["item_users_all"]).rank(pct=True).to_numpy()

        cats = static["cat_code"].to_numpy()
        frame = pd.DataFrame({"cat": cats, "clk": c[("click", 30)], "imp": c[("impression", 30)]})
        per_cat = frame.groupby("cat")[["clk", "imp"]].transform("sum")
        out["item_category_ctr_30d"] = smoothed_rate(
            per_cat["clk"].to_numpy(), per_cat["imp"].to_numpy(), g_ctr, smoothing.ctr_prior_weight
        )
        out["item_price"] = static["price"].to_numpy(dtype=np.float64)
        out["item_log_price"] = static["log_price"].to_numpy(dtype=np.float64)
        out["item_price_pct_in_category"] = static["price_pct"].to_numpy(dtype=np.float64)
        out["item_price_band"] = static["band"].to_numpy(dtype=np.float64)
        out["item_price_outlier"] = static["outlier"].to_numpy(dtype=np.float64)
        age = (self.prep.snapshot_time(k) - static["created_at"]).dt.total_seconds().to_numpy() / 86400.0
        out["item_age_days"] = np.clip(age, 0, None)
        out["item_is_active"] = static["is_active"].to_numpy(dtype=np.float64)
        out["item_tag_count"] = static["tag_count"].to_numpy(dtype=np.float64)
        out["item_category_code"] = cats.astype(np.float64)
        out["item_industry_code"] = static["ind_code"].to_numpy(dtype=np.float64)
        out["item_tag_buckets"] = self.prep.item_tags.astype(np.float64)
        return out
