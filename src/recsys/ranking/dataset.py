"""Training rows for the ranker: what users were shown and whether they clicked.

With impressions (the marketplace), every impression is a row, labelled 1 when the same request
has a click (or purchase) on that item; a request's impressions form one slate. Without
impressions (e.g. MovieLens), each positive is a slate with sampled unseen negatives.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

POSITIVE = ("click", "add_to_cart", "purchase")


def impression_rows(events: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """request_id, user_id, item_id, ts, label for impressions in [start, end), slate-ordered."""
    ts = pd.to_datetime(events["ts"])
    window = events[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]
    shown = window[(window["event_type"] == "impression") & window["request_id"].notna()]
    shown = shown.drop_duplicates(["request_id", "item_id"])
    acted = events[events["event_type"].isin(POSITIVE) & events["request_id"].notna()]
    positives = set(zip(acted["request_id"], acted["item_id"], strict=True))
    keys = zip(shown["request_id"], shown["item_id"], strict=True)
    rows = pd.DataFrame(
        {
            "request_id": shown["request_id"].to_numpy(),
            "user_id": shown["user_id"].astype(str).to_numpy(),
            "item_id": shown["item_id"].astype(str).to_numpy(),
            "ts": pd.to_datetime(shown["ts"]).to_numpy(),
            "position": shown["position"].fillna(0).to_numpy(),
            "label": np.fromiter((k in positives for k in keys), dtype=np.float32, count=len(shown)),
        }
    )
    return rows.sort_values(["request_id", "position", "item_id"], kind="stable").reset_index(drop=True)


def sampled_rows(
    events: pd.DataFrame,
    start: datetime,
    end: datetime,
    item_ids: np.ndarray,
    item_weights: np.ndarray,
    negatives: int,
    seed: int,
) -> pd.DataFrame:
    """For data without impressions: each positive in [start, end) plus ``negatives`` items the
    user never interacted with, drawn by popularity (hard negatives look like what is shown)."""
    ts = pd.to_datetime(events["ts"])
    positive = events[
        events["event_type"].isin(POSITIVE) & (ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))
    ]
    positive = positive.drop_duplicates(["user_id", "item_id"])
    seen = events.groupby("user_id")["item_id"].agg(set).to_dict()
    rng = np.random.default_rng(seed)
    probs = item_weights / item_weights.sum()
    out: list[tuple[str, str, str, object, float, float]] = []
    for n, (user, item, when) in enumerate(
        zip(positive["user_id"], positive["item_id"], pd.to_datetime(positive["ts"]), strict=True)
    ):
        slate = f"s{n}"
        out.append((slate, str(user), str(item), when, 0.0, 1.0))
        banned = seen.get(user, set())
        drawn = rng.choice(item_ids, size=negatives * 3, p=probs)
        picked = [i for i in dict.fromkeys(drawn) if i not in banned][:negatives]
        out.extend((slate, str(user), str(i), when, float(p + 1), 0.0) for p, i in enumerate(picked))
    return pd.DataFrame(out, columns=["request_id", "user_id", "item_id", "ts", "position", "label"])


def slate_sizes(rows: pd.DataFrame) -> np.ndarray:
    """Group sizes in row order (rows of a slate are contiguous)."""
    change = rows["request_id"].ne(rows["request_id"].shift()).to_numpy()
    starts = np.flatnonzero(change)
    return np.diff(np.append(starts, len(rows)))
