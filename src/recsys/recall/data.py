"""RecallData: what channels are fitted on, built once from the cleaned tables."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.errors import ConfigError, InvalidInput

DEFAULT_WEIGHTS: dict[str, float] = {"view": 0.5, "click": 1.0, "add_to_cart": 2.0, "purchase": 4.0}
POSITIVE_TYPES = ("click", "add_to_cart", "purchase")
ITEM_COLUMNS = ("item_id", "title", "description", "category", "industry", "tags", "price", "status")


def check_weights(weights: dict[str, float]) -> dict[str, float]:
    for event_type, w in weights.items():
        if event_type == "impression":
            raise ConfigError("recall: interaction_weights.impression: impressions are not feedback")
        if event_type not in DEFAULT_WEIGHTS:
            raise ConfigError(
                f"recall: interaction_weights.{event_type}: unknown event type "
                f"(expected {', '.join(DEFAULT_WEIGHTS)})"
            )
        if not math.isfinite(w) or w < 0:
            raise ConfigError(f"recall: interaction_weights.{event_type}: {w!r} must be >= 0")
    return dict(weights)


@dataclass
class RecallData:
    """Fit-time input, built from the cleaned tables with ``from_tables``."""

    interactions: pd.DataFrame  # user_id, item_id, ts, weight, event_type
    items: pd.DataFrame  # ITEM_COLUMNS
    users: pd.DataFrame  # user_id, industry, region
    as_of: datetime
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_tables(
        cls, tables: dict[str, pd.DataFrame], as_of: datetime, weights: dict[str, float] | None = None
    ) -> RecallData:
        weights = check_weights(DEFAULT_WEIGHTS if weights is None else weights)
        for name in ("events", "items"):
            if name not in tables:
                raise InvalidInput(f"recall: table {name!r} is missing")
        items = tables["items"].copy()
        if "item_id" not in items:
            raise InvalidInput("recall: items has no item_id column")
        for col in ITEM_COLUMNS:
            if col not in items:
                items[col] = "active" if col == "status" else None
        items = items[list(ITEM_COLUMNS)].drop_duplicates("item_id", keep="last")
        items["item_id"] = items["item_id"].astype(str)
        items["status"] = items["status"].fillna("active")
        items["price"] = pd.to_numeric(items["price"], errors="coerce")
        items = items.sort_values("item_id").reset_index(drop=True)
        missing = {"user_id", "item_id", "event_type", "ts"} - set(tables["events"].columns)
        if missing:
            raise InvalidInput(f"recall: events lack column(s) {', '.join(sorted(missing))}")
        ev = tables["events"].assign(item_id=lambda f: f["item_id"].astype(str))
        ts = pd.to_datetime(ev["ts"])
        as_of_ts = pd.Timestamp(as_of)
        # an event after as_of would leak the future into a point-in-time fit
        keep = ev["event_type"].isin(list(weights)) & (ts <= as_of_ts) & ev["item_id"].isin(items["item_id"])
        inter = pd.DataFrame(
            {
                "user_id": ev.loc[keep, "user_id"].astype(str).to_numpy(),
                "item_id": ev.loc[keep, "item_id"].astype(str).to_numpy(),
                "ts": ts[keep].to_numpy(),
                "weight": ev.loc[keep, "event_type"].map(weights).astype(float).to_numpy(),
                "event_type": ev.loc[keep, "event_type"].astype(str).to_numpy(),
            }
        )
        inter = inter[inter["weight"] > 0].reset_index(drop=True)
        users = tables.get("users")
        if users is None:
            users = pd.DataFrame(columns=["user_id", "industry", "region"])
        users = users.reindex(columns=["user_id", "industry", "region"]).copy()
        users["user_id"] = users["user_id"].astype(str)
        return cls(inter, items, users, as_of)

    @property
    def items_key(self) -> int:
        """A fingerprint of the items table: channels fitted on items alone can be reused when equal."""
        if "items_key" not in self._cache:
            self._cache["items_key"] = int(pd.util.hash_pandas_object(self.items, index=False).sum())
        return self._cache["items_key"]

    @property
    def item_vocab(self) -> np.ndarray:
        """Sorted item ids: index order is id order, which the tie-breaks rely on."""
        return self.items["item_id"].to_numpy(dtype=object)

    @property
    def active_mask(self) -> np.ndarray:
        return (self.items["status"] == "active").to_numpy()

    def decay(self, ts: pd.Series, half_life_days: float) -> np.ndarray:
        """0.5 ** (age / half_life): an interaction half_life_days old counts half."""
        age = (pd.Timestamp(self.as_of) - pd.to_datetime(ts)).dt.total_seconds().to_numpy() / 86400.0
        return np.power(0.5, np.clip(age, 0.0, None) / half_life_days)

    def strengths(self, half_life_days: float) -> pd.DataFrame:
        """user_id, item_id, r (sum of weight x decay), last_ts: one row per (user, item)."""
        key = ("strengths", half_life_days)
        if key not in self._cache:
            df = self.interactions.assign(
                r=self.interactions["weight"] * self.decay(self.interactions["ts"], half_life_days)
            )
            self._cache[key] = (
                df.groupby(["user_id", "item_id"], sort=True)
                .agg(r=("r", "sum"), last_ts=("ts", "max"))
                .reset_index()
            )
        return self._cache[key]

    def matrix(self, half_life_days: float, max_items_per_user: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
        """(users x items CSR of strengths over ``item_vocab``, user ids).

        ``max_items_per_user`` > 0 keeps each user's most recent items only: a handful of heavy
        users otherwise dominate the quadratic co-occurrence work.
        """
        s = self.strengths(half_life_days)
        if max_items_per_user > 0:
            s = s.sort_values(["user_id", "last_ts", "item_id"], ascending=[True, False, True])
            s = s.groupby("user_id", sort=False).head(max_items_per_user)
        users, rows = np.unique(s["user_id"].to_numpy(dtype=object), return_inverse=True)
        cols = np.searchsorted(self.item_vocab, s["item_id"].to_numpy(dtype=object))
        shape = (len(users), len(self.item_vocab))
        return sp.csr_matrix((s["r"].to_numpy(np.float64), (rows, cols)), shape=shape), users

    def popularity(self, half_life_days: float) -> np.ndarray:
        """Decayed weighted interaction mass per item of ``item_vocab``."""
        s = self.strengths(half_life_days)
        cols = np.searchsorted(self.item_vocab, s["item_id"].to_numpy(dtype=object))
        return np.bincount(cols, weights=s["r"].to_numpy(np.float64), minlength=len(self.item_vocab))

    def histories(self, max_len: int = 50) -> dict[str, list[str]]:
        """Each user's positive items (click/add_to_cart/purchase), newest first, deduplicated."""
        pos = self.interactions[self.interactions["event_type"].isin(POSITIVE_TYPES)]
        last = pos.groupby(["user_id", "item_id"], sort=False)["ts"].max().reset_index()
        last = last.sort_values(["user_id", "ts", "item_id"], ascending=[True, False, True])
        return {u: g["item_id"].head(max_len).tolist() for u, g in last.groupby("user_id", sort=False)}
