"""Stable hash buckets for categorical values (same in every process, unlike ``hash()``)."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

MAX_TAGS = 8  # item_tag_buckets holds at most this many tags


def bucket(value: object, dim: int) -> int:
    """0 for a missing value, else 1..dim-1."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return 0
    return 1 + zlib.crc32(str(value).strip().lower().encode()) % (dim - 1)


def bucket_series(values: pd.Series, dim: int) -> np.ndarray:
    """``bucket`` over a Series, hashing each distinct value once."""
    codes = {v: bucket(v, dim) for v in pd.unique(values.astype(object))}
    return values.astype(object).map(codes).fillna(0).to_numpy(dtype=np.int64)


def tag_buckets(tags: pd.Series, dim: int) -> np.ndarray:
    """(n, MAX_TAGS) tag buckets per '|'-separated tag string, -1 where there is no tag."""
    out = np.full((len(tags), MAX_TAGS), -1, dtype=np.int64)
    for row, value in enumerate(tags.astype(object)):
        if not isinstance(value, str) or not value:
            continue
        seen: list[int] = []
        for tag in value.split("|"):
            b = bucket(tag, dim)
            if b and b not in seen:
                seen.append(b)
        out[row, : min(len(seen), MAX_TAGS)] = seen[:MAX_TAGS]
    return out
