"""Time-based holdouts: evaluate on what happened after what the model was trained on.

A random split would leak the future into training (a user's later purchases teaching the
model about earlier ones), so both splits cut on time. The input is one row per positive
interaction (``user_id``, ``ts``, plus any other columns, which are carried along); filter to
the positive event types before splitting. Rows keep their original index and order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.errors import InvalidInput


def _checked(interactions: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    missing = [c for c in columns if c not in interactions.columns]
    if missing:
        raise InvalidInput(f"interactions lack column(s) {missing}")
    ts = interactions["ts"]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        try:
            ts = pd.to_datetime(ts)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"interactions.ts is not a timestamp column: {exc}") from exc
    if ts.isna().any():
        raise InvalidInput(f"interactions.ts has {int(ts.isna().sum())} missing value(s)")
    return ts


def per_user_last_n_split(
    interactions: pd.DataFrame, n: int = 10, min_train: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out each user's last ``n`` interactions by ``ts``, leaving at least ``min_train`` in train.

    A user with ``c`` interactions gets ``min(n, c - min_train)`` of them in test, so a user with
    ``c <= min_train`` stays entirely in train (there is nothing to learn them from otherwise).
    Equal timestamps keep their input order, so ties split deterministically.
    """
    if n < 1 or min_train < 0:
        raise InvalidInput(f"need n >= 1 and min_train >= 0, got n={n}, min_train={min_train}")
    ts = _checked(interactions, ("user_id", "ts"))
    frame = pd.DataFrame({"user_id": interactions["user_id"].to_numpy(), "ts": ts.to_numpy()})
    ordered = frame.sort_values(["user_id", "ts"], kind="stable")  # multi-key sorts are lexsort: stable
    groups = ordered.groupby("user_id", sort=False, dropna=False)
    from_end = groups.cumcount(ascending=False).to_numpy()
    held = np.clip(groups["ts"].transform("size").to_numpy() - min_train, 0, n)
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[ordered.index.to_numpy()] = from_end < held
    return interactions[~is_test], interactions[is_test]


def global_time_split(interactions: pd.DataFrame, test_days: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Everything in the last ``test_days`` before the latest ``ts`` is test, the rest is train.

    Test users absent from train are kept: cold-start users are part of the real traffic, and a
    caller measuring warm users only can drop them.
    """
    if not test_days > 0:
        raise InvalidInput(f"test_days must be positive, got {test_days}")
    ts = _checked(interactions, ("ts",))
    if ts.empty:
        return interactions.copy(), interactions.copy()
    cutoff = ts.max() - pd.Timedelta(days=test_days)
    is_test = (ts > cutoff).to_numpy()
    return interactions[~is_test], interactions[is_test]
