"""User-item cross features, computed from stored user and item vectors.

The same functions run offline (training rows) and online (one user x ~300 candidates), on the
same float32 vectors, so training and serving see identical values. A cross feature is one
function registered in ``CROSS_FUNCTIONS`` plus one entry in config/features.yaml.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from recsys.errors import ConfigError
from recsys.features.registry import FeatureRegistry


class Pair:
    """Column access to aligned user and item vectors (users may be one row, broadcast)."""

    def __init__(self, users: np.ndarray, items: np.ndarray, ucols: dict[str, int], icols: dict[str, int]):
        self.n = items.shape[0]
        self._u = users.astype(np.float64, copy=False)
        self._i = items.astype(np.float64, copy=False)
        self._ucols, self._icols = ucols, icols

    def u(self, name: str) -> np.ndarray:
        col = self._u[:, self._ucols[name]]
        return np.broadcast_to(col, (self.n,)) if col.shape[0] == 1 else col

    def i(self, name: str) -> np.ndarray:
        return self._i[:, self._icols[name]]

    @staticmethod
    def _block(cols: dict[str, int], name: str) -> tuple[int, int]:
        """(first column, width) of the vector feature ``name[0..dim)``; its parts are adjacent."""
        start, dim = cols[f"{name}[0]"], 1
        while f"{name}[{dim}]" in cols:
            dim += 1
        return start, dim

    def ublock(self, name: str) -> np.ndarray:
        start, dim = self._block(self._ucols, name)
        block = self._u[:, start : start + dim]
        return np.broadcast_to(block, (self.n, dim)) if block.shape[0] == 1 else block

    def iblock(self, name: str) -> np.ndarray:
        start, dim = self._block(self._icols, name)
        return self._i[:, start : start + dim]


CrossFn = Callable[[Pair], np.ndarray]
CROSS_FUNCTIONS: dict[str, CrossFn] = {}


def cross(name: str) -> Callable[[CrossFn], CrossFn]:
    def register(fn: CrossFn) -> CrossFn:
        CROSS_FUNCTIONS[name] = fn
        return fn

    return register


def _pick(block: np.ndarray, index: np.ndarray) -> np.ndarray:
    """block[row, index[row]], 0 where the index is out of range (unknown bucket)."""
    idx = index.astype(np.int64)
    ok = (idx >= 0) & (idx < block.shape[1])
    picked = np.take_along_axis(block, np.where(ok, idx, 0)[:, None], axis=1)[:, 0]
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
    bands = np.stack([p.u(f"user_price_band_pref_{b}") for b in range(5)], axis=1)
    return _pick(bands, p.i("item_price_band"))


@cross("cross_price_gap_z")
def _price_gap_z(p: Pair) -> np.ndarray:
    gap = p.i("item_log_price") - p.u("user_click_log_price_mean")
    return gap / (p.u("user_click_log_price_std") + 0.25)


@cross("cross_price_ratio")
def _price_ratio(p: Pair) -> np.ndarray:
    return np.exp(np.clip(p.i("item_log_price") - p.u("user_click_log_price_mean"), -10, 10))


def _tag_prefs(p: Pair) -> tuple[np.ndarray, np.ndarray]:
    tags = p.iblock("item_tag_buckets")
    valid = tags >= 0
    prefs = np.take_along_axis(p.ublock("user_tag_pref"), np.where(valid, tags, 0).astype(np.int64), axis=1)
    return np.where(valid, prefs, 0.0), valid


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
        self._ucols = {c: i for i, c in enumerate(self.user_columns)}
        self._icols = {c: i for i, c in enumerate(self.item_columns)}
        self._user_scalars = [self._ucols[f.name] for f in registry.entity("user", kind="scalar")]
        self._item_scalars = [self._icols[f.name] for f in registry.entity("item", kind="scalar")]
        self.ranker_columns = registry.ranker_columns

    def compute(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n, n_cross) float32; ``users`` is (n, du) or (1, du) for one user."""
        pair = Pair(np.atleast_2d(users), np.atleast_2d(items), self._ucols, self._icols)
        cols = [CROSS_FUNCTIONS[name](pair) for name in self.names]
        return np.stack(cols, axis=1).astype(np.float32) if cols else np.zeros((pair.n, 0), np.float32)

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
