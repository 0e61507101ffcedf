"""Popularity channels: global/category (popular), industry and price band.

Each groups items by one attribute and publishes group -> items by decayed popularity; recall
weighs each group by the user's affinity to it (share of recency-weighted history), so
score(j) = affinity(group(j)) x pop(j).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from recsys.recall.base import (
    ChannelParams,
    HistoryParams,
    Hits,
    RecallChannel,
    RecallContext,
    history_weights,
    load_map,
    save_map,
)
from recsys.recall.data import RecallData
from recsys.recall.lists import RankedLists, accumulate, top_k


class GroupPopularity(RecallChannel):
    """Base: ``_groups`` labels items; lists are ``key_prefix + label`` -> popular items."""

    Params: ClassVar[type[ChannelParams]] = HistoryParams
    key_prefix: ClassVar[str] = ""

    def __init__(self, name: str | None = None, params: Any = None) -> None:
        super().__init__(name, params)
        self.item_group: dict[str, str] = {}

    def _groups(self, data: RecallData) -> pd.Series | str:
        """A label per row of ``data.items`` (NaN = no group), or a reason to disable."""
        raise NotImplementedError

    def _fit(self, data: RecallData) -> str | None:
        groups = self._groups(data)
        if isinstance(groups, str):
            return groups
        pop = data.popularity(self.params.half_life_days)
        labelled = groups.notna().to_numpy()
        self.item_group = {
            i: str(g) for i, g, ok in zip(data.items["item_id"], groups, labelled, strict=True) if ok
        }
        rows = np.flatnonzero(labelled & data.active_mask & (pop > 0))
        if not len(rows):
            return "no active item with an interaction has a group"
        self.lists = self._build_lists(data, groups.iloc[rows].astype(str).to_numpy(), rows, pop)
        self.stats.update(groups=len(self.lists))
        return None

    def _build_lists(
        self, data: RecallData, labels: np.ndarray, rows: np.ndarray, pop: np.ndarray
    ) -> RankedLists:
        keys, key_rows = np.unique(labels, return_inverse=True)
        return RankedLists.from_entries(
            data.item_vocab,
            [self.key_prefix + str(k) for k in keys],
            key_rows,
            rows,
            pop[rows],
            limit=self.params.list_size,
        )

    def affinity(self, user_id: str, ctx: RecallContext) -> dict[str, float]:
        """Group -> share of the recency-weighted history in it."""
        mass: dict[str, float] = defaultdict(float)
        for item, w in history_weights(ctx.history, self.params):  # type: ignore[arg-type]
            group = self.item_group.get(item)
            if group is not None:
                mass[group] += w
        total = sum(mass.values())
        return {g: m / total for g, m in mass.items()} if total else {}

    def _recall(self, user_id: str, ctx: RecallContext, k: int) -> Hits:
        parts = []
        for group, w in sorted(self.affinity(user_id, ctx).items()):
            idx, sc = self.lists.get(self.key_prefix + group)
            parts.append((idx, sc.astype(np.float64) * w))
        idx, score = accumulate(parts)
        return top_k(idx, score, k, ctx.excluded(self.vocab))

    def _save_arrays(self, directory: Path) -> None:
        save_map(directory / "item_group.parquet", self.item_group, "group")

    def _load_arrays(self, directory: Path) -> None:
        self.item_group = load_map(directory / "item_group.parquet", "group")


class PopularParams(HistoryParams):
    min_interactions: int = Field(1, ge=0, le=1, description="the fallback runs on any interaction")
    list_size: int = Field(500, ge=1)
    category_boost: float = Field(1.0, ge=0, description="score x (1 + boost x history share of category)")


class Popular(GroupPopularity):
    """Global and per-category decayed popularity: the cold-start fallback.

    score(j) = pop(j) x (1 + category_boost x share of the history in j's category), over the
    global list and the lists of the history's categories; with no history it is plain
    global popularity.
    """

    type = "popular"
    Params: ClassVar[type[ChannelParams]] = PopularParams
    key_prefix = "category:"
    GLOBAL = "global"

    def _groups(self, data: RecallData) -> pd.Series | str:
        return data.items["category"].where(data.items["category"].fillna("") != "")

    def _build_lists(
        self, data: RecallData, labels: np.ndarray, rows: np.ndarray, pop: np.ndarray
    ) -> RankedLists:
        # items without a category still belong in the global list
        every = np.flatnonzero(data.active_mask & (pop > 0))
        keys, key_rows = np.unique(labels, return_inverse=True)
        all_keys = [self.GLOBAL] + [self.key_prefix + str(k) for k in keys]
        return RankedLists.from_entries(
            data.item_vocab,
            all_keys,
            np.concatenate([np.zeros(len(every), np.int64), key_rows + 1]),
            np.concatenate([every, rows]),
            np.concatenate([pop[every], pop[rows]]),
            limit=self.params.list_size,
        )

    def _fit(self, data: RecallData) -> str | None:
        groups = self._groups(data)
        pop = data.popularity(self.params.half_life_days)
        if not (data.active_mask & (pop > 0)).any():
            return "no active item has an interaction"
        labelled = groups.notna().to_numpy()
        self.item_group = {
            i: str(g) for i, g, ok in zip(data.items["item_id"], groups, labelled, strict=True) if ok
        }
        rows = np.flatnonzero(labelled & data.active_mask & (pop > 0))
        self.lists = self._build_lists(data, groups.iloc[rows].astype(str).to_numpy(), rows, pop)
        self.stats.update(groups=len(self.lists) - 1)
        return None

    def _recall(self, user_id: str, ctx: RecallContext, k: int) -> Hits:
        share = self.affinity(user_id, ctx)
        boost = self.params.category_boost  # type: ignore[attr-defined]
        keys = [self.GLOBAL] + [self.key_prefix + g for g in sorted(share)]
        pops: dict[int, float] = {}
        for key in keys:
            idx, sc = self.lists.get(key)
            pops.update(zip(idx.tolist(), sc.astype(np.float64).tolist(), strict=True))
        idx = np.fromiter(pops, np.int64, len(pops))
        codes, names = self._vocab_groups()
        # per group code its share (index len(names) = no group): one vector op per request
        shares = np.array([share.get(g, 0.0) for g in names] + [0.0])
        factor = 1.0 + boost * shares[codes[idx]]
        scores = np.fromiter(pops.values(), np.float64, len(pops)) * factor
        return top_k(idx, scores, k, ctx.excluded(self.vocab))

    def _vocab_groups(self) -> tuple[np.ndarray, list[str]]:
        """Each list-vocabulary item's group code, and the group names; built on first use."""
        cached = getattr(self, "_groups_cache", None)
        if cached is None or cached[0] is not self.lists.vocab:
            names = sorted(set(self.item_group.values()))
            code = {g: n for n, g in enumerate(names)}
            groups = [self.item_group.get(str(i), "") for i in self.lists.vocab]
            codes = np.array([code.get(g, len(names)) for g in groups], dtype=np.int64)
            cached = (self.lists.vocab, codes, names)
            self._groups_cache = cached
        return cached[1], cached[2]


class IndustryParams(HistoryParams):
    own_weight: float = Field(1.0, ge=0, description="affinity added to the user's own industry")


class Industry(GroupPopularity):
    """Popular items of the user's own industry (weight ``own_weight``) and history industries."""

    type = "industry"
    Params: ClassVar[type[ChannelParams]] = IndustryParams

    def __init__(self, name: str | None = None, params: Any = None) -> None:
        super().__init__(name, params)
        self.user_industry: dict[str, str] = {}

    def _groups(self, data: RecallData) -> pd.Series | str:
        industry = data.items["industry"].where(data.items["industry"].fillna("") != "")
        if industry.isna().all():
            return "no item has an industry"
        users = data.users.dropna(subset=["industry"])
        self.user_industry = dict(zip(users["user_id"], users["industry"].astype(str), strict=True))
        return industry

    def affinity(self, user_id: str, ctx: RecallContext) -> dict[str, float]:
        out = super().affinity(user_id, ctx)
        own = ctx.user_industry or self.user_industry.get(user_id)
        if own:
            out[own] = out.get(own, 0.0) + self.params.own_weight  # type: ignore[attr-defined]
        return out

    def _save_arrays(self, directory: Path) -> None:
        super()._save_arrays(directory)
        save_map(directory / "user_industry.parquet", self.user_industry, "industry")

    def _load_arrays(self, directory: Path) -> None:
        super()._load_arrays(directory)
        self.user_industry = load_map(directory / "user_industry.parquet", "industry")


class PriceBandParams(HistoryParams):
    bands: int = Field(5, ge=2, le=20, description="price quantile bands (5 = quintiles)")
    min_priced_items: int = Field(10, ge=2, description="fewer priced items disable the channel")


class PriceBand(GroupPopularity):
    """Popular items in the price bands (quantiles of active item prices) the user buys in."""

    type = "price_band"
    Params: ClassVar[type[ChannelParams]] = PriceBandParams

    def __init__(self, name: str | None = None, params: Any = None) -> None:
        super().__init__(name, params)
        self.edges: list[float] = []

    def _groups(self, data: RecallData) -> pd.Series | str:
        p: PriceBandParams = self.params  # type: ignore[assignment]
        price = data.items["price"].where(data.items["price"] > 0)
        priced = price[data.active_mask & price.notna().to_numpy()]
        if len(priced) < p.min_priced_items:
            return f"{len(priced)} active items have a price < min_priced_items {p.min_priced_items}"
        self.edges = [float(e) for e in np.quantile(priced, np.arange(1, p.bands) / p.bands)]
        band = np.searchsorted(self.edges, price.fillna(0).to_numpy(), side="right")
        return pd.Series(band.astype(str), index=price.index).where(price.notna())

    def _state(self) -> dict[str, Any]:
        return {"edges": self.edges}

    def _restore(self, state: dict[str, Any]) -> None:
        self.edges = list(state.get("edges", []))
