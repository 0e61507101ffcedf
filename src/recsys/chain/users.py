"""What the chain knows about a user before recall: recent positives, seen items, industry.

Built from the events of one part of the data (``UserStates.build``), written into the bundle
(``histories.parquet``: user_id, industry, items, seen) and published to the online store as
the ``history`` and ``seen`` lists, so that offline and online callers read the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.recall.filtering import SeenPolicy

POSITIVE = ("click", "add_to_cart", "purchase")  # what a user's recall history is made of
SEP = "|"


def _lists(pairs: pd.DataFrame, limit: int | None) -> dict[str, list[str]]:
    """user -> distinct items, newest first (ties by item id), at most ``limit``."""
    if pairs.empty:
        return {}
    last = pairs.groupby(["user_id", "item_id"], sort=False)["ts"].max().reset_index()
    last = last.sort_values(["user_id", "ts", "item_id"], ascending=[True, False, True], kind="stable")
    if limit is not None:
        last = last.groupby("user_id", sort=False).head(limit)
    users = last["user_id"].to_numpy()
    items = last["item_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    return {str(users[s]): items[s:e].tolist() for s, e in zip(starts, ends, strict=True)}


def seen_rows(tables: dict[str, pd.DataFrame], policy: SeenPolicy) -> pd.DataFrame:
    """user_id, item_id, ts of every event (and paid order) that makes an item seen under ``policy``."""
    events = tables["events"]
    keep = policy.excludes(events)
    parts = [
        pd.DataFrame(
            {
                "user_id": events.loc[keep, "user_id"].astype(str).to_numpy(),
                "item_id": events.loc[keep, "item_id"].astype(str).to_numpy(),
                "ts": pd.to_datetime(events.loc[keep, "ts"]).to_numpy(),
            }
        )
    ]
    orders = tables.get("orders")
    if policy.purchase and orders is not None and len(orders):
        paid = orders[orders["status"] == "paid"]
        parts.append(
            pd.DataFrame(
                {
                    "user_id": paid["user_id"].astype(str).to_numpy(),
                    "item_id": paid["item_id"].astype(str).to_numpy(),
                    "ts": pd.to_datetime(paid["created_at"]).to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@dataclass
class UserStates:
    history: dict[str, list[str]] = field(default_factory=dict)  # positives, newest first, capped
    seen: dict[str, set[str]] = field(default_factory=dict)  # the policy's, whole past
    industry: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, tables: dict[str, pd.DataFrame], policy: SeenPolicy, history_size: int) -> UserStates:
        """From the (already cut) ``events``, ``orders`` and ``users`` tables."""
        events = tables["events"]
        ev = pd.DataFrame(
            {
                "user_id": events["user_id"].astype(str).to_numpy(),
                "item_id": events["item_id"].astype(str).to_numpy(),
                "ts": pd.to_datetime(events["ts"]).to_numpy(),
            }
        )
        positive = events["event_type"].isin(POSITIVE).to_numpy()
        seen = {u: set(items) for u, items in _lists(seen_rows(tables, policy), None).items()}
        users = tables.get("users")
        industry: dict[str, str] = {}
        if users is not None and "industry" in users:
            known = users[users["industry"].notna()]
            industry = dict(zip(known["user_id"].astype(str), known["industry"].astype(str), strict=True))
        return cls(_lists(ev[positive], history_size), seen, industry)

    def of(self, user_id: str) -> tuple[list[str], set[str], str | None]:
        """(history, seen, industry); a user never seen has none of them."""
        return self.history.get(user_id, []), self.seen.get(user_id, set()), self.industry.get(user_id)

    def users(self) -> list[str]:
        return sorted(set(self.history) | set(self.seen) | set(self.industry))

    def to_frame(self, user_ids: list[str] | None = None) -> pd.DataFrame:
        ids = self.users() if user_ids is None else list(user_ids)
        return pd.DataFrame(
            {
                "user_id": ids,
                "industry": [self.industry.get(u) for u in ids],
                "items": [SEP.join(self.history.get(u, [])) for u in ids],
                "seen": [SEP.join(sorted(self.seen.get(u, set()))) for u in ids],
            }
        )

    def save(self, path: Path, user_ids: list[str] | None = None) -> None:
        self.to_frame(user_ids).to_parquet(path, index=False)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> UserStates:
        users = frame["user_id"].astype(str).tolist()
        items = frame["items"].fillna("").tolist()
        seen = frame["seen"].fillna("").tolist() if "seen" in frame else [""] * len(users)
        industry = frame["industry"].tolist() if "industry" in frame else [None] * len(users)
        return cls(
            {u: h.split(SEP) for u, h in zip(users, items, strict=True) if h},
            {u: set(s.split(SEP)) for u, s in zip(users, seen, strict=True) if s},
            {u: i for u, i in zip(users, industry, strict=True) if isinstance(i, str)},
        )

    @classmethod
    def load(cls, path: Path) -> UserStates:
        return cls.from_frame(pd.read_parquet(path))
