"""Price outlier fences on log(price), per category with a global fallback.

Prices are multiplicative (a x100 typo is one step on the log scale, whatever the category's
price level), so every statistic is computed on ``log(price)`` with robust estimators: IQR
with *discrete* quartiles, or the modified z-score (median / MAD). Discrete quartiles and the
median are data points inside the fences, so clipping outliers to the fences leaves the
statistics unchanged and a second clean finds nothing new (clean(clean(x)) == clean(x)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.cleaning.config import PriceOutlierConfig

# When most items of a group share one price tier the IQR/MAD is ~0 and every other price
# would be an outlier; never let the spread fall below "a factor of 2" on the log scale.
MIN_LOG_SPREAD = math.log(2.0)
IQR_PER_SIGMA = 1.349  # IQR of a normal distribution, in sigmas
MAD_TO_SIGMA = 1.4826  # consistency constant of the MAD for a normal distribution
# A clipped price is exp(fence); log() of it may land one ulp outside the fence, and must not
# be flagged again on the next run.
FENCE_TOLERANCE = 1e-9
# Dropping outliers changes the statistics; re-detect until nothing moves (bounded for safety).
MAX_DROP_ROUNDS = 50


@dataclass(frozen=True)
class Outliers:
    """Row-aligned result of one detection pass (index = the price series' index)."""

    low: pd.Series  # bool: log price below the low fence
    high: pd.Series  # bool: log price above the high fence
    low_price: pd.Series  # float: the low fence as a price (NaN where not judged)
    high_price: pd.Series  # float: the high fence as a price (NaN where not judged)

    @property
    def any(self) -> pd.Series:
        return self.low | self.high


def _fences(values: pd.Series, keys: pd.Series, cfg: PriceOutlierConfig) -> pd.DataFrame:
    """Low/high fences on log price for every group of ``keys`` (index = group key)."""
    grouped = values.groupby(keys, sort=False)
    if cfg.method == "iqr":
        q1 = grouped.quantile(0.25, interpolation="lower")
        q3 = grouped.quantile(0.75, interpolation="higher")
        spread = (q3 - q1).clip(lower=MIN_LOG_SPREAD)
        return pd.DataFrame({"lo": q1 - cfg.iqr_k * spread, "hi": q3 + cfg.iqr_k * spread})
    median = grouped.median()
    mad = (values - keys.map(median)).abs().groupby(keys, sort=False).median()
    scale = (MAD_TO_SIGMA * mad).clip(lower=MIN_LOG_SPREAD / IQR_PER_SIGMA)
    return pd.DataFrame({"lo": median - cfg.z_threshold * scale, "hi": median + cfg.z_threshold * scale})


def row_fences(price: pd.Series, category: pd.Series, cfg: PriceOutlierConfig) -> tuple[pd.Series, pd.Series]:
    """Per-row (low, high) fences on log price; NaN for unpriced rows or too little data.

    A category with fewer than ``min_group_size`` priced items uses the global fences
    (computed over all priced items); when even the whole table has fewer priced items than
    that, nothing is judged.
    """
    nan = pd.Series(np.nan, index=price.index, dtype=float)
    price = price.astype(float)
    priced = np.isfinite(price) & (price > 0)
    if int(priced.sum()) < cfg.min_group_size:
        return nan, nan.copy()
    logp = np.log(price[priced])
    glob = _fences(logp, pd.Series(0, index=logp.index), cfg).iloc[0]
    lo = pd.Series(glob["lo"], index=logp.index)
    hi = pd.Series(glob["hi"], index=logp.index)
    if cfg.per_category:
        cat = category[priced]
        big = cat.map(cat.value_counts()) >= cfg.min_group_size
        if big.any():
            per_cat = _fences(logp[big], cat[big], cfg)
            lo[big] = cat[big].map(per_cat["lo"])
            hi[big] = cat[big].map(per_cat["hi"])
    return lo.reindex(price.index), hi.reindex(price.index)


def detect(price: pd.Series, category: pd.Series, cfg: PriceOutlierConfig) -> Outliers:
    """One detection pass: which priced rows fall outside their fences."""
    lo, hi = row_fences(price, category, cfg)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(price.astype(float))
    low = (logp < lo - FENCE_TOLERANCE).fillna(False).astype(bool)
    high = (logp > hi + FENCE_TOLERANCE).fillna(False).astype(bool)
    return Outliers(low=low, high=high, low_price=np.exp(lo), high_price=np.exp(hi))


def drop_mask(price: pd.Series, category: pd.Series, cfg: PriceOutlierConfig) -> pd.Series:
    """Rows to drop: re-detect on the survivors until a pass finds no outlier (fixed point)."""
    dropped = pd.Series(False, index=price.index)
    for _ in range(MAX_DROP_ROUNDS):
        alive = ~dropped
        found = detect(price[alive], category[alive], cfg).any
        if not found.any():
            break
        dropped[found[found].index] = True
    return dropped
