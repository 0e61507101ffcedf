"""Evaluation protocols: last-n and time-cut splits, what is relevant, and their bad input."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from recsys.errors import InvalidInput
from recsys.evaluation.protocols import Positives, Protocol, require_users, split
from recsys.recall.filtering import SeenPolicy

T0 = datetime(2020, 1, 1)


def tables(rows: list[tuple[str, str, str, int, float | None]]) -> dict[str, pd.DataFrame]:
    """(user, item, event_type, hour, value) rows."""
    events = pd.DataFrame(
        {
            "event_id": [f"e{n}" for n in range(len(rows))],
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "event_type": [r[2] for r in rows],
            "ts": [T0 + timedelta(hours=r[3]) for r in rows],
            "value": [r[4] for r in rows],
        }
    )
    return {"events": events, "users": pd.DataFrame({"user_id": sorted({r[0] for r in rows})})}


def ratings(user: str, items: list[str], start: int, value: float = 5.0) -> list:
    return [(user, item, "view", start + n, value) for n, item in enumerate(items)] + [
        (user, item, "click", start + n, value) for n, item in enumerate(items) if value >= 4
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("last-n:10", Protocol("last-n", n=10)), ("time-cut:0.9", Protocol("time-cut", quantile=0.9)),
     (" time-cut:.75 ", Protocol("time-cut", quantile=0.75))],
)  # fmt: skip
def test_parse(text: str, expected: Protocol) -> None:
    assert Protocol.parse(text) == expected
    assert Protocol.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["last-n:0", "last-n:x", "time-cut:1.5", "time-cut:0", "leave-one-out", ""])
def test_parse_refuses_naming_the_flag(text: str) -> None:
    with pytest.raises(InvalidInput, match="^--protocol: "):
        Protocol.parse(text)


def test_last_n_holds_out_each_users_newest_items_and_everything_after_the_cut() -> None:
    rows = ratings("u1", [f"a{n}" for n in range(6)], 0)  # 6 items: the last 2 are test
    rows += ratings("u2", ["a0", "a1"], 0)  # 2 items: all training
    rows += ratings("u3", ["a4", "a5"], -9, value=2.0)  # ... as are u3's two low ratings of a4, a5
    rows += [("u1", "a0", "view", 6, None)]  # a later view of an old item: test side, not relevant
    rows += [("u1", "a1", "click", 20, 5.0)]  # a1 seen before the cut: never relevant
    part = split(tables(rows), Protocol.parse("last-n:2"), Positives(), SeenPolicy(), T0 + timedelta(days=9))
    assert part.relevant == {"u1": {"a4", "a5"}}
    train = part.train["events"]
    assert train[train["user_id"] == "u1"]["ts"].max() == T0 + timedelta(hours=3)  # the cut: hour 4
    assert len(train[train["user_id"] == "u2"]) == 4
    assert part.as_of == (T0 + timedelta(hours=3, seconds=1))  # just after the training part's newest


def test_time_cut_is_one_global_time_and_relevance_needs_known_users_and_items() -> None:
    rows = ratings("u1", ["a", "b", "c", "d"], 0) + ratings("u2", ["a", "b"], 0)
    rows += [("u1", "e", "click", 100, 5.0), ("u2", "c", "click", 101, 5.0)]
    rows += [("u3", "a", "click", 102, 5.0), ("u1", "zz", "click", 103, 5.0)]  # new user, new item
    rows += [("u2", "d", "impression", 104, None)]
    part = split(
        tables(rows), Protocol.parse("time-cut:0.8"), Positives(), SeenPolicy(), T0 + timedelta(days=9)
    )
    cut = pd.Timestamp(part.stats["cut"])
    assert (part.train["events"]["ts"] < cut).all()
    assert part.relevant == {"u2": {"c"}}  # e and zz never occur in training, u3 is new
    assert part.shown == {"u2": {"d"}}
    with pytest.raises(InvalidInput, match=r"leaves 1 users .*need >= 2"):
        require_users(part, 2, "evaluation")


def test_positive_min_value_counts_ratings_not_event_types() -> None:
    rows = ratings("u1", ["a", "b", "c", "d", "e"], 0)
    rows += [("u1", "f", "view", 10, 4.5), ("u1", "g", "view", 11, 2.0)]
    rows += [("u2", "f", "view", 0, 3.0), ("u2", "g", "view", 0, 3.0)]
    t = tables(rows)
    by_value = split(
        t, Protocol.parse("last-n:2"), Positives(min_value=4), SeenPolicy(), T0 + timedelta(days=1)
    )
    by_type = split(t, Protocol.parse("last-n:2"), Positives(), SeenPolicy(), T0 + timedelta(days=1))
    assert by_value.relevant == {"u1": {"f"}} and by_type.relevant == {}
    assert "f" in {i for i in t["events"]["item_id"]}


def test_nothing_before_the_as_of_time_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="none at or before the as-of time 2019-01-01.*newest event is "
                       "2020-01-01T00:00:00: run with --as-of latest"):  # fmt: skip
        split(tables(ratings("u1", ["a"], 0)), Protocol.parse("last-n:1"), Positives(), SeenPolicy(),
              datetime(2019, 1, 1))  # fmt: skip
