"""The seen policy and the user states the chain reads (history, seen, industry)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from recsys.chain.users import UserStates
from recsys.recall.filtering import SeenPolicy

T0 = datetime(2024, 1, 1)


def tables() -> dict[str, pd.DataFrame]:
    rows = [
        ("u1", "a", "view", 0, None),  # a plain view: re-recommendable by default
        ("u1", "b", "view", 1, 2.0),  # a rating (a view with a value): seen
        ("u1", "c", "click", 2, None),
        ("u1", "d", "impression", 3, None),
        ("u1", "e", "add_to_cart", 4, None),
        ("u2", "a", "purchase", 5, 10.0),
    ]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "hour", "value"])
    events["ts"] = [T0 + timedelta(hours=h) for h in events.pop("hour")]
    orders = pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["f", "g"], "status": ["paid", "refunded"],
                           "created_at": [T0, T0]})  # fmt: skip
    users = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "industry": ["retail", None, "food"]})
    return {"events": events, "orders": orders, "users": users}


def test_default_policy_excludes_bought_carted_clicked_and_rated_not_viewed() -> None:
    states = UserStates.build(tables(), SeenPolicy(), history_size=50)
    assert states.seen == {"u1": {"b", "c", "e", "f"}, "u2": {"a"}}  # the refunded order is not bought
    assert states.history == {"u1": ["e", "c"], "u2": ["a"]}  # positives, newest first
    assert states.industry == {"u1": "retail", "u3": "food"}
    assert SeenPolicy().describe() == "bought, added to a cart, clicked or rated"


def test_views_can_be_excluded_and_clicks_allowed_again() -> None:
    policy = SeenPolicy(view=True, click=False)
    assert UserStates.build(tables(), policy, 50).seen["u1"] == {"a", "b", "e", "f"}
    assert (
        SeenPolicy(purchase=False, add_to_cart=False, click=False, rating=False)
        .describe()
        .startswith("nothing")
    )


def test_history_is_capped_seen_is_not_and_both_survive_a_round_trip(tmp_path) -> None:  # noqa: ANN001
    many = pd.DataFrame({"user_id": "u", "item_id": [f"i{n:03d}" for n in range(300)], "event_type": "click",
                         "ts": [T0 + timedelta(minutes=n) for n in range(300)], "value": None})  # fmt: skip
    t = {"events": many, "users": pd.DataFrame({"user_id": ["u", "cold"], "industry": [None, "x"]})}
    states = UserStates.build(t, SeenPolicy(), history_size=50)
    assert states.history["u"][:2] == ["i299", "i298"] and len(states.history["u"]) == 50
    assert len(states.seen["u"]) == 300
    states.save(tmp_path / "h.parquet", ["u", "cold", "nobody"])
    back = UserStates.load(tmp_path / "h.parquet")
    assert back.history == states.history and back.seen == states.seen and back.industry == {"cold": "x"}
    assert back.of("nobody") == ([], set(), None)
