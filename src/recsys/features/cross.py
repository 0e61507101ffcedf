"""User-item cross features, computed from stored user and item vectors.

The same functions run offline (training rows) and online (one user x ~300 candidates), on the
same float32 vectors, so training and serving see identical values. A cross feature is one
function registered in ``CROSS_FUNCTIONS`` plus one entry in config/features.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from recsys.errors import ConfigError
from recsys.features.registry import FeatureRegistry


class Pair:
    """Column access to aligned user and item vectors. Users may be one row (serving: one user
    x ~300 candidates): a user column is then a scalar and a user block one row, which numpy
    broadcasts for free; materializing them per candidate cost more than the arithmetic."""

    def __init__(self, users: np.ndarray, items: np.ndarray, layout: Layout) -> None:
        self.n = items.shape[0]
        self._u = users.astype(np.float64, copy=False)
        self._i = items.astype(np.float64, copy=False)
        self._layout = layout
        self.one_user = self._u.shape[0] == 1
        self.cache: dict[str, Any] = {}  # values two features share, computed once per Pair

    def u(self, name: str) -> np.ndarray:
        """A user column: (n,), or a 0-d value for one user row."""
        col = self._layout.ucols[name]
        return self._u[0, col] if self.one_user else self._u[:, col]

    def i(self, name: str) -> np.ndarray:
        return self._i[:, self._layout.icols[name]]

    def ublock(self, name: str) -> np.ndarray:
        """A user vector feature: (n, dim), or (1, dim) for one user row."""
        start, dim = self._layout.ublocks[name]
        return self._u[:, start : start + dim]

    def ucolumns(self, names: list[str]) -> np.ndarray:
        """User columns side by side: (n, len(names)), or (1, len(names)) for one user row."""
        return self._u[:, [self._layout.ucols[n] for n in names]]

    def iblock(self, name: str) -> np.ndarray:
        start, dim = self._layout.iblocks[name]
        return self._i[:, start : start + dim]


class Layout:
    """Where each feature sits in the user and item vectors, worked out once per registry."""

    def __init__(self, user_columns: list[str], item_columns: list[str]) -> None:
        self.ucols = {c: i for i, c in enumerate(user_columns)}
        self.icols = {c: i for i, c in enumerate(item_columns)}
        self.ublocks = self._blocks(self.ucols)
        self.iblocks = self._blocks(self.icols)

    @staticmethod
    def _blocks(cols: dict[str, int]) -> dict[str, tuple[int, int]]:
        """(first column, width) of each vector feature ``name[0..dim)``; its parts are adjacent."""
        out: dict[str, tuple[int, int]] = {}
        for column, index in cols.items():
            if column.endswith("[0]"):
                name, dim = column[:-3], 1
                while f"{name}[{dim}]" in cols:
                    dim += 1
                out[name] = (index, dim)
        return out


CrossFn = Callable[[Pair], np.ndarray]
CROSS_FUNCTIONS: dict[str, CrossFn] = {}


def cross(name: str) -> Callable[[CrossFn], CrossFn]:
    def register(fn: CrossFn) -> CrossFn:
        CROSS_FUNCTIONS[name] = fn
        return fn

    return register


def _pick(block: np.ndarray, index: np.ndarray) -> np.ndarray:
    """block[row, index[row]] (one block row: block[0, index[row]]), 0 where the index is out
    of range (unknown bucket)."""
    idx = index.astype(np.int64)
    ok = (idx >= 0) & (idx < block.shape[1])
    safe = np.where(ok, idx, 0)
    picked = block[0, safe] if block.shape[0] == 1 else np.take_along_axis(block, safe[:, None], axis=1)[:, 0]
    return np.where(ok, picked, 0.0)


@cross("cross_category_affinity")
def _category_affinity(p: Pair) -> np.ndarray:
    return _pick(p.ublock("user_category_pref"), p.i("item_category_code"))


@cross("cross_industry_affinity")
def _industry_affinity(p: Pair) -> np.ndarray:
    return _pick(p.ublock("user_industry_pref"), p.i("item_industry_code"))


@cross("cross_same_industry")
def _same_industry(p: Pair) -> np.ndarray:
    code = p.u("user_industry_code")
    return ((code > 0) & (code == p.i("item_industry_code"))).astype(np.float64)


@cross("cross_price_band_affinity")
def _price_band_affinity(p: Pair) -> np.ndarray:
    return _pick(p.ucolumns([f"user_price_band_pref_{b}" for b in range(5)]), p.i("item_price_band"))


@cross("cross_price_gap_z")
def _price_gap_z(p: Pair) -> np.ndarray:
    gap = p.i("item_log_price") - p.u("user_click_log_price_mean")
    return gap / (p.u("user_click_log_price_std") + 0.25)


@cross("cross_price_ratio")
def _price_ratio(p: Pair) -> np.ndarray:
    return np.exp(np.clip(p.i("item_log_price") - p.u("user_click_log_price_mean"), -10, 10))


def _tag_prefs(p: Pair) -> tuple[np.ndarray, np.ndarray]:
    """The user's preference for each of the item's tags (0 for no tag), and which are tags."""
    if "tag_prefs" not in p.cache:
        tags = p.iblock("item_tag_buckets")
        valid = tags >= 0
        safe = np.where(valid, tags, 0).astype(np.int64)
        pref = p.ublock("user_tag_pref")
        prefs = pref[0, safe] if pref.shape[0] == 1 else np.take_along_axis(pref, safe, axis=1)
        p.cache["tag_prefs"] = (np.where(valid, prefs, 0.0), valid)
    return p.cache["tag_prefs"]


@cross("cross_tag_affinity")
def _tag_affinity(p: Pair) -> np.ndarray:
    prefs, valid = _tag_prefs(p)
    return prefs.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)


@cross("cross_tag_overlap_count")
def _tag_overlap(p: Pair) -> np.ndarray:
    prefs, _ = _tag_prefs(p)
    return (prefs > 0).sum(axis=1).astype(np.float64)


@cross("cross_ctr_product")
def _ctr_product(p: Pair) -> np.ndarray:
    return p.u("user_ctr_30d") * p.i("item_ctr_30d")


@cross("cross_activity_x_popularity")
def _activity_x_popularity(p: Pair) -> np.ndarray:
    return np.log1p(p.u("user_click_count_30d")) * p.i("item_popularity_pct_7d")


@cross("cross_rating_gap")
def _rating_gap(p: Pair) -> np.ndarray:
    return p.i("item_rating_mean_all") - p.u("user_rating_mean_all")


class CrossFeatures:
    """Cross features and the ranker's input matrix, in the registry's order."""

    def __init__(self, registry: FeatureRegistry) -> None:
        self.names = [f.name for f in registry.entity("cross")]
        missing = [n for n in self.names if n not in CROSS_FUNCTIONS]
        if missing:
            raise ConfigError(f"feature registry: cross feature(s) without code: {', '.join(missing)}")
        undeclared = [n for n in CROSS_FUNCTIONS if n not in self.names]
        if undeclared:
            raise ConfigError(f"feature registry: cross feature(s) not declared: {', '.join(undeclared)}")
        self.user_columns = registry.vector_columns("user")
        self.item_columns = registry.vector_columns("item")
        self.layout = Layout(self.user_columns, self.item_columns)
        self._user_scalars = [self.layout.ucols[f.name] for f in registry.entity("user", kind="scalar")]
        self._item_scalars = [self.layout.icols[f.name] for f in registry.entity("item", kind="scalar")]
        self.ranker_columns = registry.ranker_columns

    def compute(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n, n_cross) float32; ``users`` is (n, du) or (1, du) for one user."""
        pair = Pair(np.atleast_2d(users), np.atleast_2d(items), self.layout)
        out = np.empty((pair.n, len(self.names)), np.float32)
        for j, name in enumerate(self.names):
            out[:, j] = CROSS_FUNCTIONS[name](pair)  # a 0-d value (one user) fills its column
        return out

    @property
    def n_user_columns(self) -> int:
        """The ranking matrix's leading columns, which depend on the user alone."""
        return len(self._user_scalars)

    def ranking_matrix(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n, len(ranker_columns)) float32: user scalars, item scalars, cross features."""
        users, items = np.atleast_2d(users), np.atleast_2d(items)
        n = items.shape[0]
        u = users[:, self._user_scalars]
        u = np.broadcast_to(u, (n, u.shape[1])) if u.shape[0] == 1 else u
        return np.hstack([u, items[:, self._item_scalars], self.compute(users, items)]).astype(np.float32)
