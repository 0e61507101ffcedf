"""The synthetic marketplace: determinism, contract shape, behaviour signals, dirty rows, Matomo."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from recsys.contracts import CONTRACTS, EVENT_TYPES, ITEM_STATUSES, ORDER_STATUSES
from recsys.data.loader import write_tables
from recsys.data.synthetic import (
    DIRTY_KINDS,
    Marketplace,
    SyntheticConfig,
    generate_marketplace,
    matomo_visits,
    write_matomo_export,
)
from recsys.db import create_engine

SMALL = {"users": 200, "items": 100, "days": 7, "seed": 7}
FUNNEL = ("impression", "click", "view", "add_to_cart", "purchase")


@pytest.fixture(scope="module")
def clean() -> Marketplace:
    return generate_marketplace(SyntheticConfig(**SMALL, dirty_rate=0))


@pytest.fixture(scope="module")
def dirty() -> Marketplace:
    return generate_marketplace(SyntheticConfig(**SMALL, dirty_rate=0.02))


def _labelled_impressions(m: Marketplace) -> pd.DataFrame:
    """Impressions with y = 1 when the same request clicked the item."""
    ev = m.events
    clicks = ev.loc[ev["event_type"] == "click", ["request_id", "item_id"]].drop_duplicates()
    imp = ev[ev["event_type"] == "impression"].merge(
        clicks.assign(y=1), on=["request_id", "item_id"], how="left"
    )
    return imp.assign(y=imp["y"].fillna(0))


def test_same_config_same_frames_and_other_seed_differs() -> None:
    config = SyntheticConfig(users=60, items=40, days=3, seed=3, dirty_rate=0.05)
    a, b = generate_marketplace(config), generate_marketplace(config)
    for name, frame in a.frames().items():
        pd.testing.assert_frame_equal(frame, b.frames()[name])
    assert a.dirty == b.dirty
    other = generate_marketplace(config.model_copy(update={"seed": 4}))
    assert not other.events.equals(a.events)
    assert not other.items.equals(a.items)


def test_clean_rows_do_not_depend_on_dirty_rate(clean: Marketplace, dirty: Marketplace) -> None:
    pd.testing.assert_frame_equal(clean.users, dirty.users)
    pd.testing.assert_frame_equal(clean.orders, dirty.orders)


@pytest.mark.parametrize("market", ["clean", "dirty"])
def test_frames_follow_the_contracts(market: str, request: pytest.FixtureRequest) -> None:
    m: Marketplace = request.getfixturevalue(market)
    for name, frame in m.frames().items():
        contract = CONTRACTS[name]
        assert list(frame.columns) == contract.columns
        assert frame[contract.primary_key].is_unique
        assert frame[contract.required_columns].notna().all().all(), name
        for col in contract.datetime_columns:
            assert frame[col].dt.tz is None
    assert m.users["user_id"].str.fullmatch(r"u\d{6}").all()
    assert m.items["item_id"].str.fullmatch(r"i\d{6}").all()
    assert m.orders["order_id"].str.fullmatch(r"o\d+").all()
    assert m.events["event_id"].str.fullmatch(r"e\d+").all()
    assert m.events["request_id"].str.fullmatch(r"r\d+").all()
    assert set(m.events["event_type"]) == set(EVENT_TYPES)
    assert set(m.events["scene"]) <= {"home", "detail", "cart", "search"}
    assert set(m.items["status"]) <= set(ITEM_STATUSES)
    assert set(m.orders["status"]) <= set(ORDER_STATUSES)
    for name in ("users", "items", "orders"):
        frame = m.frames()[name]
        assert (frame["updated_at"] >= frame["created_at"]).all(), name


def test_items_have_industries_categories_and_tag_words(clean: Marketplace) -> None:
    items = clean.items
    assert items["industry"].nunique() >= 6
    assert items["category"].nunique() >= 20
    assert (items.groupby("category")["industry"].nunique() == 1).all()
    # titles are built from the tags and the category, which gives TF-IDF something to match
    first_tag = items["tags"].str.split("|").str[0]
    assert all(t in title for t, title in zip(first_tag, items["title"], strict=True))
    assert (items["price"] > 0).all()
    assert (items["status"] == "active").mean() > 0.9


def test_popularity_is_heavy_tailed(clean: Marketplace) -> None:
    counts = clean.events.loc[clean.events["event_type"] == "impression", "item_id"].value_counts()
    top = counts.iloc[: max(1, len(clean.items) // 10)].sum()
    assert top / counts.sum() > 0.22  # a uniform catalogue gives 0.1 (tiny catalogues flatten it)


def test_click_rates_position_bias_and_funnel(clean: Marketplace) -> None:
    imp = _labelled_impressions(clean)
    ctr = imp["y"].mean()
    assert 0.03 <= ctr <= 0.1
    by_pos = imp.groupby("position")["y"].mean()
    assert by_pos.loc[0] > 2 * by_pos.loc[by_pos.index.max()]
    counts = clean.events["event_type"].value_counts()
    assert 0.03 <= counts["purchase"] / counts["click"] <= 0.2
    # no item twice in a slate
    assert not imp.duplicated(["request_id", "item_id"]).any()


def test_clicks_follow_the_preference_match(clean: Marketplace) -> None:
    imp = _labelled_impressions(clean)
    user_industry = clean.users.set_index("user_id")["industry"].reindex(imp["user_id"])
    item_industry = clean.items.set_index("item_id")["industry"].reindex(imp["item_id"])
    match = user_industry.to_numpy() == item_industry.to_numpy()
    assert imp.loc[match, "y"].mean() > 2.5 * imp.loc[~match, "y"].mean()


def test_clean_funnel_timestamps_increase(clean: Marketplace) -> None:
    ev = clean.events
    key = ["request_id", "item_id"]
    wide = ev.pivot_table(index=key, columns="event_type", values="ts", aggfunc="min")
    for earlier, later in zip(FUNNEL, FUNNEL[1:], strict=False):
        both = wide[[earlier, later]].dropna()
        assert (both[later] > both[earlier]).all(), (earlier, later)
    assert wide["impression"].notna().all()
    assert (ev["updated_at"] >= ev["ts"]).all()


def test_dirty_rate_zero_gives_no_dirty_rows(clean: Marketplace) -> None:
    ev, start = clean.events, pd.Timestamp(SyntheticConfig().start)
    assert all(ids == [] for ids in clean.dirty.values())
    assert ev["ts_offset_minutes"].isna().all()
    assert ev["ts"].between(start, start + timedelta(days=SMALL["days"])).all()
    assert ev["user_id"].isin(clean.users["user_id"]).all()
    assert ev["item_id"].isin(clean.items["item_id"]).all()
    content = [c for c in ev.columns if c not in ("event_id", "updated_at")]
    assert not ev.duplicated(content).any()
    key = ev.sort_values("ts")[["user_id", "item_id", "event_type", "ts"]]
    gap = key.groupby(["user_id", "item_id", "event_type"])["ts"].diff()
    assert not (gap < pd.Timedelta(seconds=2)).any()
    cat_median = clean.items.groupby("category")["price"].transform("median")
    assert (clean.items["price"] > 0).all()
    assert (clean.items["price"] / cat_median).max() < 20


def test_dirty_rows_of_every_kind(dirty: Marketplace) -> None:
    ev = dirty.events.set_index("event_id")
    end = pd.Timestamp(SyntheticConfig().start) + timedelta(days=SMALL["days"])
    assert set(dirty.dirty) == set(DIRTY_KINDS)
    assert all(dirty.dirty[k] for k in DIRTY_KINDS), dirty.dirty

    local = ev.loc[dirty.dirty["local_time"]]
    assert local["ts_offset_minutes"].notna().all()
    assert ev["ts_offset_minutes"].notna().sum() == len(local)
    assert (ev.loc[dirty.dirty["future_ts"], "ts"] > end + timedelta(days=1)).all()

    impressions = ev[ev["event_type"] == "impression"].groupby("request_id")["ts"].min()
    late = ev.loc[dirty.dirty["out_of_order"]]
    assert (late["event_type"] == "click").all()
    assert (late["ts"] < impressions.reindex(late["request_id"]).to_numpy()).all()

    content = [c for c in ev.columns if c != "updated_at"]
    assert ev.loc[dirty.dirty["exact_duplicate"]].index.isin(ev[ev.duplicated(content)].index).all()
    for event_id in dirty.dirty["near_duplicate"][:5]:
        row = ev.loc[event_id]
        twin = ev[
            (ev["user_id"] == row["user_id"])
            & (ev["item_id"] == row["item_id"])
            & (ev["event_type"] == row["event_type"])
            & (ev["ts"] == row["ts"] - pd.Timedelta(milliseconds=500))
        ]
        assert len(twin) == 1

    assert not ev.loc[dirty.dirty["unknown_user"], "user_id"].isin(dirty.users["user_id"]).any()
    assert not ev.loc[dirty.dirty["unknown_item"], "item_id"].isin(dirty.items["item_id"]).any()
    prices = dirty.items.set_index("item_id")["price"]
    cat_median = dirty.items.set_index("item_id").groupby("category")["price"].transform("median")
    outliers = dirty.dirty["price_outlier"]
    assert (prices[outliers] / cat_median[outliers] > 20).all()
    assert (prices[dirty.dirty["nonpositive_price"]] <= 0).all()


def test_orders_join_purchases(dirty: Marketplace) -> None:
    buys = dirty.events[dirty.events["event_type"] == "purchase"]
    joined = buys.merge(dirty.orders, on=["request_id", "item_id"], suffixes=("", "_o"))
    assert len(joined) == len(buys) == len(dirty.orders) > 0
    assert np.allclose(joined["value"], joined["amount"])
    assert (joined["user_id"] == joined["user_id_o"]).all()
    assert (joined["ts"] == joined["created_at"]).all()
    assert (dirty.orders["status"] == "paid").mean() > 0.8


def test_frames_load_into_sqlite(dirty: Marketplace, tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db' / 'source.db'}", create_dirs=True)
    try:
        written = write_tables(engine, dirty.frames())
        with engine.connect() as conn:
            count = "SELECT COUNT(*) FROM {}"
            counts = {t: conn.execute(sa.text(count.format(t))).scalar() for t in written}
            valued = "SELECT COUNT(*) FROM events WHERE value IS NOT NULL"
            valued_rows = conn.execute(sa.text(valued)).scalar()
    finally:
        engine.dispose()
    assert counts == {name: len(frame) for name, frame in dirty.frames().items()}
    assert valued_rows == (dirty.events["event_type"] == "purchase").sum()


def test_matomo_visits_shape_and_revenue(dirty: Marketplace) -> None:
    visits = matomo_visits(dirty, site_id=3)
    assert visits and [v["idVisit"] for v in visits] == list(range(1, len(visits) + 1))
    keys = {"idSite", "idVisit", "visitorId", "userId", "serverDate", "firstActionTimestamp",
            "lastActionTimestamp", "visitDuration", "actions", "actionDetails"}  # fmt: skip
    for v in visits:
        assert keys <= set(v)
        assert v["idSite"] == 3 and re.fullmatch(r"[0-9a-f]{16}", v["visitorId"])
        assert v["actions"] == len(v["actionDetails"])
        stamps = [a["timestamp"] for a in v["actionDetails"]]
        assert stamps == sorted(stamps) and v["visitDuration"] == stamps[-1] - stamps[0]
    actions = [a for v in visits for a in v["actionDetails"]]
    assert len(actions) == len(dirty.events)
    assert {a["type"] for a in actions} == {"event", "action", "ecommerceOrder"}
    same_user = {v["visitorId"] for v in visits if v["userId"] == visits[0]["userId"]}
    assert len(same_user) == 1
    item_ids = set(dirty.items["item_id"])
    for a in actions:
        assert "1" in a["customDimensions"]
        if a["type"] == "event":
            assert a["eventCategory"] == "recsys" and a["eventAction"] in EVENT_TYPES
        elif a["type"] == "action":
            assert a["url"].rsplit("/", 1)[-1] in item_ids and a["pageTitle"]
        else:
            detail = a["itemDetails"][0]
            assert {"itemSKU", "itemName", "itemCategory", "price", "quantity"} <= set(detail)
            assert a["orderId"] in set(dirty.orders["order_id"])
    revenue = sum(a["revenue"] for a in actions if a["type"] == "ecommerceOrder")
    gmv = dirty.events.loc[dirty.events["event_type"] == "purchase", "value"].sum()
    assert revenue == pytest.approx(gmv)
    assert sum(v["totalEcommerceRevenue"] for v in visits) == pytest.approx(gmv)


def test_write_matomo_export_is_atomic_json(clean: Marketplace, tmp_path) -> None:
    path = tmp_path / "matomo" / "visits.json"
    n = write_matomo_export(clean, path)
    assert n == len(json.loads(path.read_text(encoding="utf-8"))) > 0
    assert [p.name for p in path.parent.iterdir()] == ["visits.json"]
