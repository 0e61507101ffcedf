"""Evaluation protocols: how the data before the as-of time is split into a training part and a
test part, and which test interactions count as relevant.

* ``last-n:N``: per user, the last ``N`` distinct items they touched (by first interaction) are
  the test part; the user's *cut* is the first of those interactions, and everything the user
  did from then on is test, everything before it training. Users with ``N`` items or fewer stay
  entirely in training.
* ``time-cut:Q``: one global cut at the ``Q`` quantile of the interaction times; everything
  before it is training, everything from it on (up to the as-of time) is test.

A test interaction is *relevant* when it is positive (by event type, or ``value >= min_value``
with ``--positive-min-value``), its user and item both occur in the training part, and the
item is not one the user had already seen there (the seen policy keeps it out of every list, so
no method could ever hit it). The same split applied to the training part gives the
*validation* split: it tunes baselines and yields the ranker's training labels, so no choice is
ever made on the test part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from recsys.chain.users import POSITIVE, seen_rows
from recsys.errors import InvalidInput
from recsys.recall.filtering import SeenPolicy

INTERACTIONS = ("view", "click", "add_to_cart", "purchase")  # impressions are not interactions
_PATTERN = re.compile(r"^(last-n):(\d+)$|^(time-cut):(\d*\.?\d+)$")


@dataclass(frozen=True)
class Protocol:
    kind: Literal["last-n", "time-cut"]
    n: int = 10
    quantile: float = 0.9

    @classmethod
    def parse(cls, text: str, flag: str = "--protocol") -> Protocol:
        m = _PATTERN.match(str(text).strip())
        if not m:
            raise InvalidInput(f"{flag}: {text!r} is not last-n:N (N >= 1) or time-cut:Q (0 < Q < 1)")
        if m.group(1):
            n = int(m.group(2))
            if n < 1:
                raise InvalidInput(f"{flag}: {text!r}: N must be >= 1")
            return cls("last-n", n=n)
        q = float(m.group(4))
        if not 0 < q < 1:
            raise InvalidInput(f"{flag}: {text!r}: Q must be between 0 and 1 (exclusive)")
        return cls("time-cut", quantile=q)

    def __str__(self) -> str:
        return f"last-n:{self.n}" if self.kind == "last-n" else f"time-cut:{self.quantile:g}"


@dataclass(frozen=True)
class Positives:
    """Which interactions count as relevant: by event type, or by value (ratings)."""

    event_types: tuple[str, ...] = POSITIVE
    min_value: float | None = None

    def mask(self, events: pd.DataFrame) -> np.ndarray:
        if self.min_value is None:
            return events["event_type"].isin(self.event_types).to_numpy()
        value = pd.to_numeric(events["value"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return (events["event_type"] != "impression").to_numpy() & (value >= self.min_value)

    def __str__(self) -> str:
        if self.min_value is None:
            return " / ".join(self.event_types)
        return f"value >= {self.min_value:g}"


@dataclass
class Split:
    protocol: Protocol
    train: dict[str, pd.DataFrame]  # the tables with the test part removed
    as_of: datetime  # where the training part ends: features and recall are computed at it
    relevant: dict[str, set[str]]  # per test user, never empty
    shown: dict[str, set[str]] = field(default_factory=dict)  # test impressions not acted on
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def users(self) -> list[str]:
        return sorted(self.relevant)


def _ids(events: pd.DataFrame) -> pd.DataFrame:
    return events.assign(user_id=events["user_id"].astype(str), item_id=events["item_id"].astype(str),
                         ts=pd.to_datetime(events["ts"]))  # fmt: skip


def _user_cuts(inter: pd.DataFrame, n: int) -> pd.Series:
    """user -> cut time: the first touch of their n-th newest item, for users with > n items."""
    first = inter.groupby(["user_id", "item_id"], sort=False)["ts"].min().reset_index()
    first = first.sort_values(["user_id", "ts", "item_id"], kind="stable")
    from_end = first.groupby("user_id", sort=False).cumcount(ascending=False)
    size = first.groupby("user_id", sort=False)["ts"].transform("size")
    cut = first[(from_end == n - 1) & (size > n)]
    return cut.set_index("user_id")["ts"]


def split(
    tables: dict[str, pd.DataFrame],
    protocol: Protocol,
    positives: Positives,
    policy: SeenPolicy,
    as_of: datetime,
) -> Split:
    """The training part and the relevant test items of ``tables`` up to ``as_of``."""
    everything = _ids(tables["events"])
    events = everything[everything["ts"] <= pd.Timestamp(as_of)]
    inter = events[events["event_type"].isin(INTERACTIONS)]
    if inter.empty:
        newest = everything["ts"].max()
        hint = (
            f"; the newest event is {newest.isoformat()}: run with --as-of latest (or a time after it)"
            if not pd.isna(newest)
            else "; there are no events at all"
        )
        raise InvalidInput(
            f"evaluation: {protocol} has no interactions to split: none at or before the as-of time "
            f"{as_of.isoformat()}{hint}"
        )
    orders = tables.get("orders")
    if orders is not None:
        orders = orders[pd.to_datetime(orders["created_at"]) <= pd.Timestamp(as_of)]
    if protocol.kind == "time-cut":
        cut_time = pd.Timestamp(inter["ts"].quantile(protocol.quantile))
        in_test = (events["ts"] >= cut_time).to_numpy()
        order_test = (
            (pd.to_datetime(orders["created_at"]) >= cut_time).to_numpy() if orders is not None else None
        )
        cut_info: dict[str, Any] = {"cut": cut_time.isoformat()}
    else:
        cuts = _user_cuts(inter, protocol.n)
        user_cut = events["user_id"].map(cuts)
        in_test = (user_cut.notna() & (events["ts"] >= user_cut)).to_numpy()
        order_test = None
        if orders is not None:
            ocut = orders["user_id"].astype(str).map(cuts)
            order_test = (ocut.notna() & (pd.to_datetime(orders["created_at"]) >= ocut)).to_numpy()
        cut_info = {"users_with_a_cut": len(cuts)}
    train_events = events[~in_test]
    test = events[in_test]
    train = {**tables, "events": train_events}
    if orders is not None:
        train["orders"] = orders[~order_test]
    train_inter = train_events[train_events["event_type"].isin(INTERACTIONS)]
    if train_inter.empty:
        raise InvalidInput(f"evaluation: {protocol} leaves no interactions in the training part")
    known_users = set(train_inter["user_id"].unique())
    known_items = set(train_inter["item_id"].unique())
    seen = seen_rows(train, policy)  # what the chain excludes for the user: never hit, never relevant
    seen_pairs = set(zip(seen["user_id"], seen["item_id"], strict=True))
    hits = test[positives.mask(test)]
    hits = hits[hits["user_id"].isin(known_users) & hits["item_id"].isin(known_items)]
    relevant: dict[str, set[str]] = {}
    for user, item in zip(hits["user_id"], hits["item_id"], strict=True):
        if (user, item) not in seen_pairs:
            relevant.setdefault(user, set()).add(item)
    shown: dict[str, set[str]] = {}
    impressions = test[
        (test["event_type"] == "impression").to_numpy() & test["user_id"].isin(relevant).to_numpy()
    ]
    for user, item in zip(impressions["user_id"], impressions["item_id"], strict=True):
        if item not in relevant[user]:
            shown.setdefault(user, set()).add(item)
    if protocol.kind == "last-n":  # the training part's newest event must be before its as-of time
        train_as_of = (train_inter["ts"].max() + pd.Timedelta(seconds=1)).to_pydatetime()
    else:
        train_as_of = cut_time.to_pydatetime()
    stats = {
        **cut_info,
        "train_events": len(train_events),
        "test_events": len(test),
        "test_users": len(relevant),
        "relevant": sum(len(v) for v in relevant.values()),
        "train_users": len(known_users),
        "train_items": len(known_items),
        "as_of": train_as_of.isoformat(),
        "positives": str(positives),
    }
    return Split(protocol, train, train_as_of, relevant, shown, stats)


AUTO = "auto"
DEFAULTS = ("time-cut:0.9", "last-n:10")


def choices(setting: str, flag: str) -> list[Protocol]:
    """``auto``: a global time cut and a per-user split; otherwise the one protocol named."""
    texts = DEFAULTS if str(setting).strip() == AUTO else (setting,)
    return [Protocol.parse(t, flag) for t in texts]


def counterpart(protocol: Protocol) -> Protocol:
    """The other kind of split: per user for a global one, and the reverse."""
    return Protocol("time-cut", quantile=0.9) if protocol.kind == "last-n" else Protocol("last-n", n=10)


def best_split(
    tables: dict[str, pd.DataFrame],
    protocols: list[Protocol],
    positives: Positives,
    policy: SeenPolicy,
    as_of: datetime,
) -> Split:
    """The split of the protocol that leaves the most users with relevant test items: a global
    time cut where users are active throughout (a marketplace), a per-user split where each user
    comes in bursts years apart (ratings). The first protocol's error when none can split."""
    best: Split | None = None
    first_error: InvalidInput | None = None
    for protocol in protocols:
        try:
            part = split(tables, protocol, positives, policy, as_of)
        except InvalidInput as e:
            first_error = first_error or e
            continue
        if best is None or len(part.relevant) > len(best.relevant):
            best = part
    if best is None:
        assert first_error is not None
        raise first_error
    if len(protocols) > 1:
        best.stats["chosen_from"] = [str(p) for p in protocols]
    return best


def require_users(part: Split, minimum: int, what: str) -> None:
    """A clear error with the counts when a split leaves too few users to measure anything."""
    if len(part.relevant) < minimum:
        s = part.stats
        raise InvalidInput(
            f"{what}: {part.protocol} leaves {len(part.relevant)} users with relevant test items "
            f"(need >= {minimum}; {s['relevant']} relevant items, {s['test_events']} test and "
            f"{s['train_events']} training events, {s['train_users']} training users)"
        )
