"""Inputs of FeatureEngineV2: static user/item attributes and bucketed events, built once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from recsys.features.hashing import bucket_series, tag_buckets
from recsys.features.windows import RECENCY_HORIZON_DAYS, age_buckets

# profile dimensions (must match the registry's `dim` of the profiles they index)
CATEGORY_DIM, INDUSTRY_DIM, TAG_DIM, REGION_DIM = 64, 16, 64, 16
PRICE_BANDS = 5


@dataclass
class Prepared:
    as_of: datetime
    snapshots: int
    users: pd.DataFrame  # index user_id
    items: pd.DataFrame  # index item_id, static attributes
    item_tags: np.ndarray  # (n_items, MAX_TAGS) tag buckets, -1 = none
    events: pd.DataFrame  # user_id, item_id, event_type, a, value, item attributes
    band_edges: list[float] = field(default_factory=list)
    # every event before as_of (user_id, item_id, event_type, a, value): the lifetime features
    lifetime: pd.DataFrame = field(default_factory=pd.DataFrame)

    def snapshot_time(self, k: int) -> pd.Timestamp:
        return pd.Timestamp(self.as_of) - pd.Timedelta(days=k)


def _item_static(items: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, list[float]]:
    df = items.set_index("item_id").sort_index()
    price = pd.to_numeric(df["price"], errors="coerce").where(lambda p: p > 0)
    category = df["category"].fillna("")
    price = price.fillna(price.groupby(category).transform("median")).fillna(price.median()).fillna(0.0)
    log_price = np.log1p(price.to_numpy(dtype=np.float64))
    priced = log_price[price.to_numpy() > 0]
    edges = list(np.quantile(priced, [0.2, 0.4, 0.6, 0.8])) if len(priced) else [0.0] * 4
    static = pd.DataFrame(index=df.index)
    static["price"] = price.to_numpy()
    static["log_price"] = log_price
    static["band"] = np.searchsorted(edges, log_price, side="right")
    static["price_pct"] = pd.Series(log_price, index=df.index).groupby(category).rank(pct=True).to_numpy()
    static["cat_code"] = bucket_series(df["category"], CATEGORY_DIM)
    static["ind_code"] = bucket_series(df["industry"], INDUSTRY_DIM)
    tags = df["tags"] if "tags" in df else pd.Series("", index=df.index)
    buckets = tag_buckets(tags, TAG_DIM)
    static["tag_count"] = (buckets >= 0).sum(axis=1)
    static["created_at"] = pd.to_datetime(df["created_at"])
    static["is_active"] = (df["status"].fillna("active") == "active").astype(float).to_numpy()
    outlier = df["price_outlier"] if "price_outlier" in df else pd.Series(False, index=df.index)
    static["outlier"] = outlier.fillna(False).astype(float).to_numpy()
    return static, buckets, [float(e) for e in edges]


def prepare(tables: dict[str, pd.DataFrame], as_of: datetime, snapshots: int) -> Prepared:
    """Static attributes and the events visible to the requested snapshots, with age buckets."""
    users = tables["users"].set_index("user_id").sort_index()
    user_static = pd.DataFrame(index=users.index)
    user_static["ind_code"] = bucket_series(users["industry"], INDUSTRY_DIM)
    user_static["region_code"] = bucket_series(users["region"], REGION_DIM)
    user_static["created_at"] = pd.to_datetime(users["created_at"])
    item_static, item_tags, edges = _item_static(tables["items"])

    ev = tables["events"][["user_id", "item_id", "event_type", "ts", "value"]]
    a = age_buckets(ev["ts"], as_of)
    known = item_static.index.get_indexer(ev["item_id"]) >= 0
    lifetime = ev.loc[(a >= 0) & known, ["user_id", "item_id", "event_type", "value"]].assign(
        a=a[(a >= 0) & known]
    )
    keep = (a >= 0) & (a < snapshots - 1 + RECENCY_HORIZON_DAYS)
    ev = ev.loc[keep, ["user_id", "item_id", "event_type", "value"]].copy()
    ev["a"] = a[keep]
    ev["event_type"] = ev["event_type"].astype("category")
    rows = item_static.index.get_indexer(ev["item_id"])
    ev = ev[rows >= 0]  # cleaned data has no orphans; raw input may
    rows = rows[rows >= 0]
    for col in ("cat_code", "ind_code", "band", "log_price"):
        ev[col] = item_static[col].to_numpy()[rows]
    ev["item_row"] = rows
    return Prepared(as_of, snapshots, user_static, item_static, item_tags, ev.reset_index(drop=True), edges,
                    lifetime.reset_index(drop=True))  # fmt: skip
