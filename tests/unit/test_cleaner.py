"""Unit tests of the cleaner: every rule, every action, report accounting and idempotency."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recsys.cleaning.cleaner import clean_tables
from recsys.cleaning.config import CleaningConfig
from recsys.cleaning.report import CleaningReport
from recsys.cleaning.rules import REASONS, RULES
from recsys.contracts import CONTRACTS
from recsys.errors import InvalidInput

NOW = datetime(2024, 6, 1, 12, 0, 0)
T0 = pd.Timestamp("2024-06-01 10:00:00")
CREATED = pd.Timestamp("2024-01-01")


# --- frame builders --------------------------------------------------------------------------


def frame(table: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A contract-shaped frame; datetime columns as naive datetime64, like the extractor's."""
    out = pd.DataFrame(rows, columns=CONTRACTS[table].columns)
    for col in CONTRACTS[table].datetime_columns:
        out[col] = pd.to_datetime(out[col])
    for col in ("price", "amount", "value", "position", "ts_offset_minutes"):
        if col in out.columns:
            out[col] = out[col].astype(float)
    return out


def user(uid: str, **kw: Any) -> dict[str, Any]:
    return {
        "user_id": uid,
        "industry": "retail",
        "region": "eu",
        "created_at": CREATED,
        "updated_at": CREATED,
    } | kw


def item(iid: str, price: float | None = 10.0, category: str = "c1", **kw: Any) -> dict[str, Any]:
    return {
        "item_id": iid,
        "title": f"title {iid}",
        "description": None,
        "category": category,
        "industry": None,
        "tags": "a|b",
        "price": price,
        "status": "active",
        "created_at": CREATED,
        "updated_at": CREATED,
    } | kw


def order(oid: str, uid: str = "u1", iid: str = "i1", **kw: Any) -> dict[str, Any]:
    return {
        "order_id": oid,
        "user_id": uid,
        "item_id": iid,
        "quantity": 1,
        "amount": 10.0,
        "status": "paid",
        "request_id": None,
        "created_at": T0,
        "updated_at": T0,
    } | kw


def event(
    eid: str, etype: str = "click", seconds: float = 0.0, uid: str = "u1", iid: str = "i1", **kw: Any
) -> dict[str, Any]:
    ts = T0 + pd.Timedelta(seconds=seconds)
    return {
        "event_id": eid,
        "user_id": uid,
        "item_id": iid,
        "event_type": etype,
        "ts": ts,
        "ts_offset_minutes": None,
        "request_id": None,
        "position": None,
        "value": None,
        "scene": "home",
        "source": "app",
        "updated_at": ts,
    } | kw


def tables(
    users: list[dict[str, Any]] | None = None,
    items: list[dict[str, Any]] | None = None,
    orders: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, pd.DataFrame]:
    """A small valid table set; pass rows to replace a table's defaults."""
    return {
        "users": frame("users", users if users is not None else [user("u1"), user("u2")]),
        "items": frame("items", items if items is not None else [item("i1"), item("i2", 20.0)]),
        "orders": frame("orders", orders if orders is not None else [order("o1")]),
        "events": frame(
            "events",
            events
            if events is not None
            else [
                event("e1", "impression", 0, request_id="r1", position=0),
                event("e2", "click", 5, request_id="r1"),
                event("e3", "purchase", 60, request_id="r1", value=10.0),
            ],
        ),
    }


def config(**sections: dict[str, Any]) -> CleaningConfig:
    return CleaningConfig.model_validate(sections)


def clean(
    data: dict[str, pd.DataFrame],
    cfg: CleaningConfig | None = None,
) -> tuple[dict[str, pd.DataFrame], CleaningReport]:
    return clean_tables(data, cfg or CleaningConfig(), NOW)


def counts(report: CleaningReport, table: str) -> tuple[dict[str, int], dict[str, int]]:
    t = report.tables[table]
    return t["fixed"], t["dropped"]


def ids(out: dict[str, pd.DataFrame], table: str) -> list[str]:
    return out[table][CONTRACTS[table].primary_key].tolist()


def priced_items(n: int = 25, category: str = "c1", base: float = 10.0) -> list[dict[str, Any]]:
    """n items with prices spread over [base, 2 * base): a plausible category."""
    return [item(f"{category}-{k:02d}", base * (1 + k / n), category) for k in range(n)]


def messy() -> dict[str, pd.DataFrame]:
    """One of everything the cleaner fixes or drops."""
    items = priced_items() + [
        item("i1"),
        item("big", 5000.0),
        item("tiny", 0.05),
        item("zero", 0.0),
        item("noprice", None),
        item("notitle", title=None),
    ]
    users = [
        user("u1"),
        user("u2"),
        user("u2", region="us", updated_at=CREATED + timedelta(1)),
        user("", region="x"),
    ]
    orders = [
        order("o1"),
        order("o2", amount=-1.0),
        order("o3", quantity=0),
        order("o4", uid="ghost"),
        order("o5", iid="nope"),
        order("o6", created_at=pd.Timestamp(NOW) + pd.Timedelta(days=2)),
    ]
    events = [
        event("e01", "impression", 0, request_id="r1", position=0),
        event("e02", "click", -5, request_id="r1"),  # before its impression
        event("e03", "purchase", -10, request_id="r1", value=10.0),
        event("e04", "click", 100),
        event("e05", "click", 100),  # exact duplicates
        event("e06", "click", 101),  # near duplicate of e04
        event("e07", "view", 7200, ts_offset_minutes=120),  # local time
        event("e08", "view", 86400 * 3),  # future
        event("e09", "hover", 0),
        event("e10", "click", uid="ghost"),
        event("e11", "click", 0, iid="big"),
        event("e12", "click", 0, iid="notitle"),
    ]
    return tables(users, items, orders, events)


# --- accounting, purity, idempotency ---------------------------------------------------------


def assert_accounting(
    data: dict[str, pd.DataFrame], out: dict[str, pd.DataFrame], report: CleaningReport
) -> None:
    as_dict = report.to_dict()
    json.dumps(as_dict)  # serialisable
    for name, t in as_dict["tables"].items():
        assert t["input"] == len(data[name])
        assert t["kept"] == len(out[name])
        assert t["input"] == t["kept"] + sum(t["dropped"].values())
    totals = as_dict["totals"]
    assert totals["kept"] == sum(len(f) for f in out.values())
    assert totals["input"] == totals["kept"] + totals["dropped"]
    assert totals["fixed"] == sum(sum(t["fixed"].values()) for t in as_dict["tables"].values())
    assert set(out) == set(data)
    for name, f in out.items():
        extra = {"price_outlier": np.dtype(bool)} if name == "items" else {}
        assert dict(f.dtypes) == dict(data[name].dtypes) | extra  # one stable schema
        pk = CONTRACTS[name].primary_key
        assert f[pk].is_monotonic_increasing and f[pk].is_unique
        assert list(f.index) == list(range(len(f)))


def test_clean_input_is_a_noop() -> None:
    data = tables()
    out, report = clean(data)
    assert report.n_fixed() == 0 and report.n_dropped() == 0
    for name, f in data.items():
        expected = f.copy()
        if name == "items":
            expected["price_outlier"] = False
        pd.testing.assert_frame_equal(out[name], expected)
    assert_accounting(data, out, report)


@pytest.mark.parametrize("method", ["iqr", "zscore"])
@pytest.mark.parametrize("action", ["flag", "clip", "drop"])
@pytest.mark.parametrize("future", ["clamp", "drop"])
def test_cleaning_is_idempotent(method: str, action: str, future: str) -> None:
    cfg = config(price={"method": method, "action": action}, timestamps={"future_action": future})
    data = messy()
    once, report1 = clean(data, cfg)
    twice, report2 = clean(once, cfg)
    assert report1.n_fixed() > 0 and report1.n_dropped() > 0
    assert report2.n_fixed() == 0 and report2.n_dropped() == 0, report2.to_dict()
    for name in once:
        pd.testing.assert_frame_equal(twice[name], once[name])
    assert_accounting(data, once, report1)


def test_inputs_are_not_mutated() -> None:
    data = messy()
    before = {name: f.copy(deep=True) for name, f in data.items()}
    clean(data, config(price={"action": "clip"}))
    for name, f in data.items():
        pd.testing.assert_frame_equal(f, before[name])


def test_output_does_not_depend_on_input_row_order() -> None:
    data = messy()
    shuffled = {n: f.sample(frac=1.0, random_state=3) for n, f in data.items()}
    out1, r1 = clean(data)
    out2, r2 = clean(shuffled)
    assert r1.to_dict() == r2.to_dict()
    for name in out1:
        pd.testing.assert_frame_equal(out1[name], out2[name])


def test_messy_report_counts_every_reason() -> None:
    data = messy()
    out, report = clean(data)
    assert report.to_dict()["tables"] == {
        "users": {
            "input": 4,
            "kept": 2,
            "fixed": {},
            "dropped": {"missing_required": 1, "superseded_version": 1},
        },
        "items": {
            "input": 31,
            "kept": 30,
            "fixed": {"invalid_price": 1, "price_outlier_clipped": 2},
            "dropped": {"missing_required": 1},
        },
        "orders": {
            "input": 6,
            "kept": 2,
            "fixed": {"future_timestamp_clamped": 1},
            "dropped": {"invalid_amount": 2, "unknown_user": 1, "unknown_item": 1},
        },
        "events": {
            "input": 12,
            "kept": 7,
            "fixed": {"future_timestamp_clamped": 1, "out_of_order_fixed": 2, "timezone_normalized": 1},
            "dropped": {
                "exact_duplicate": 1,
                "near_duplicate": 1,
                "unknown_event_type": 1,
                "unknown_item": 1,
                "unknown_user": 1,
            },
        },
    }
    assert_accounting(data, out, report)


def test_reasons_registry_is_complete() -> None:
    assert set(REASONS) == {
        "superseded_version",
        "missing_required",
        "invalid_price",
        "price_outlier_flagged",
        "price_outlier_clipped",
        "price_outlier_dropped",
        "invalid_amount",
        "timezone_normalized",
        "future_timestamp_clamped",
        "future_timestamp_dropped",
        "out_of_order_fixed",
        "exact_duplicate",
        "near_duplicate",
        "unknown_user",
        "unknown_item",
        "unknown_event_type",
    }
    assert len(REASONS) == len(set(REASONS))
    assert all(set(rule.tables) <= set(CONTRACTS) for rule in RULES)


# --- generic rules ---------------------------------------------------------------------------


def test_superseded_version_keeps_latest_updated_at() -> None:
    later = CREATED + timedelta(days=2)
    data = tables(
        users=[
            user("u1", region="old"),
            user("u1", region="new", updated_at=later),
            user("u1", region="mid", updated_at=CREATED + timedelta(days=1)),
            user("u2"),
        ]
    )
    out, report = clean(data)
    assert ids(out, "users") == ["u1", "u2"]
    assert out["users"].set_index("user_id").loc["u1", "region"] == "new"
    assert counts(report, "users") == ({}, {"superseded_version": 2})


def test_broken_latest_version_drops_the_entity() -> None:
    later = CREATED + timedelta(days=1)
    data = tables(
        users=[
            user("u1"),
            user("u2"),
            user("u2", updated_at=later, created_at=None),
            user(None),
            user(None),
            user(""),
            user(""),
        ]
    )
    out, report = clean(data)
    # the stale u2 is not resurrected; blank keys are missing, not versions of each other
    assert ids(out, "users") == ["u1"]
    assert counts(report, "users") == ({}, {"superseded_version": 1, "missing_required": 5})


def test_undated_version_never_wins() -> None:
    data = tables(users=[user("u1", region="dated"), user("u1", region="x", updated_at=None)])
    out, report = clean(data)
    assert out["users"]["region"].tolist() == ["dated"]
    assert counts(report, "users") == ({}, {"superseded_version": 1})


@pytest.mark.parametrize(
    "bad",
    [
        {"user_id": None},
        {"user_id": ""},
        {"user_id": "  "},
        {"created_at": None},
    ],
)
def test_missing_required_user(bad: dict[str, Any]) -> None:
    data = tables(users=[user("u1"), user("u9") | bad])
    out, report = clean(data)
    assert ids(out, "users") == ["u1"]
    assert counts(report, "users") == ({}, {"missing_required": 1})


def test_missing_required_ignores_nullable_columns() -> None:
    data = tables(
        items=[item("i1", price=None, description=None, industry=None, tags=None), item("i2", category=None)]
    )
    out, report = clean(data)
    assert ids(out, "items") == ["i1"]
    assert counts(report, "items") == ({}, {"missing_required": 1})


def test_missing_contract_column_is_an_error() -> None:
    data = tables()
    data["users"] = data["users"].drop(columns=["region"])
    with pytest.raises(InvalidInput, match="region"):
        clean(data)


def test_unknown_table_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="carts"):
        clean(tables() | {"carts": pd.DataFrame()})


def test_empty_tables() -> None:
    data = tables(users=[], items=[], orders=[], events=[])
    out, report = clean(data)
    assert all(len(f) == 0 for f in out.values())
    assert "price_outlier" in out["items"].columns
    assert report.to_dict()["totals"] == {"input": 0, "kept": 0, "fixed": 0, "dropped": 0}


# --- items: price ----------------------------------------------------------------------------


def test_invalid_price_is_set_to_nan() -> None:
    data = tables(items=[item("i1"), item("i2", 0.0), item("i3", -5.0), item("i4", np.inf), item("i5", None)])
    out, report = clean(data)
    prices = out["items"].set_index("item_id")["price"]
    assert prices["i1"] == 10.0
    assert prices[["i2", "i3", "i4", "i5"]].isna().all()
    assert counts(report, "items") == ({"invalid_price": 3}, {})


def outlier_items() -> list[dict[str, Any]]:
    # three x100 prices and one /100 price must not hide each other
    return priced_items(25) + [
        item("x1", 1200.0),
        item("x2", 1500.0),
        item("x3", 1800.0),
        item("lo", 0.12),
        item("i1"),
    ]


@pytest.mark.parametrize("method", ["iqr", "zscore"])
def test_price_outliers_flag(method: str) -> None:
    data = tables(items=outlier_items())
    out, report = clean(data, config(price={"method": method, "action": "flag"}))
    items = out["items"].set_index("item_id")
    assert sorted(items.index[items["price_outlier"]]) == ["lo", "x1", "x2", "x3"]
    pd.testing.assert_series_equal(
        items["price"], data["items"].set_index("item_id")["price"].reindex(items.index)
    )
    assert counts(report, "items") == ({"price_outlier_flagged": 4}, {})


@pytest.mark.parametrize("method", ["iqr", "zscore"])
def test_price_outliers_clip(method: str) -> None:
    data = tables(items=outlier_items())
    out, report = clean(data, config(price={"method": method, "action": "clip"}))
    items = out["items"].set_index("item_id")
    outliers = ["lo", "x1", "x2", "x3"]
    assert sorted(items.index[items["price_outlier"]]) == outliers
    normal = items.drop(index=outliers)["price"]
    # clipped to the fences: outside the normal range, far inside the raw values
    assert 0.12 < items.loc["lo", "price"] < normal.min()
    assert normal.max() < items.loc["x1", "price"] < 1200.0
    assert items.loc["x1", "price"] == items.loc["x2", "price"] == items.loc["x3", "price"]
    assert counts(report, "items") == ({"price_outlier_clipped": 4}, {})


@pytest.mark.parametrize("method", ["iqr", "zscore"])
def test_price_outliers_drop_orphans_their_events(method: str) -> None:
    events = [event("e1", iid="x1"), event("e2", iid="c1-03"), event("e3", iid="lo")]
    orders = [order("o1", iid="x2"), order("o2", iid="c1-03")]
    data = tables(items=outlier_items(), orders=orders, events=events)
    out, report = clean(data, config(price={"method": method, "action": "drop"}))
    assert not set(ids(out, "items")) & {"lo", "x1", "x2", "x3"}
    assert not out["items"]["price_outlier"].any()
    assert counts(report, "items") == ({}, {"price_outlier_dropped": 4})
    assert ids(out, "events") == ["e2"] and ids(out, "orders") == ["o2"]
    assert counts(report, "events") == ({}, {"unknown_item": 2})
    assert counts(report, "orders") == ({}, {"unknown_item": 1})


def test_small_category_uses_global_fences() -> None:
    # 3 legit luxury items: an outlier against the whole catalogue, not within their category
    items = priced_items(25) + [item(f"lux{k}", 3000.0 + k, "luxury") for k in range(3)]
    data = tables(items=items + [item("i1")])
    out, report = clean(data, config(price={"action": "flag", "min_group_size": 20}))
    assert out["items"].set_index("item_id").filter(like="lux", axis=0)["price_outlier"].all()
    out, report = clean(data, config(price={"action": "flag", "min_group_size": 3}))
    assert not out["items"]["price_outlier"].any()
    out, report = clean(data, config(price={"action": "flag", "per_category": False}))
    assert counts(report, "items") == ({"price_outlier_flagged": 3}, {})


def test_too_few_prices_are_not_judged() -> None:
    data = tables(items=[item("i1", 10.0), item("i2", 11.0), item("i3", 100000.0)])
    out, report = clean(data, config(price={"action": "flag"}))
    assert not out["items"]["price_outlier"].any()
    assert report.n_fixed("items") == 0


def test_dominant_price_tier_does_not_flag_everything() -> None:
    # IQR and MAD are 0 here; the minimum spread keeps a 25 vs 20 price from being an outlier
    items = [item(f"t{k:02d}", 20.0) for k in range(25)] + [item("i1", 25.0), item("x", 2000.0)]
    for method in ("iqr", "zscore"):
        out, _ = clean(tables(items=items), config(price={"method": method, "action": "flag"}))
        flagged = out["items"].set_index("item_id")["price_outlier"]
        assert flagged[flagged].index.tolist() == ["x"]


# --- orders ----------------------------------------------------------------------------------


def test_invalid_amount_or_quantity_is_dropped() -> None:
    data = tables(
        orders=[
            order("o1"),
            order("o2", amount=0.0),
            order("o3", amount=-0.01),
            order("o4", quantity=0),
            order("o5", quantity=-2),
            order("o6", amount=np.inf),
        ]
    )
    out, report = clean(data)
    assert ids(out, "orders") == ["o1", "o2"]
    assert counts(report, "orders") == ({}, {"invalid_amount": 4})


# --- timestamps ------------------------------------------------------------------------------


def test_timezone_is_normalised_to_utc() -> None:
    data = tables(
        events=[
            event("e1", "view", 0, ts_offset_minutes=120),
            event("e2", "view", -14400, ts_offset_minutes=-330, iid="i2"),
            event("e3", "view", 3600, ts_offset_minutes=0, uid="u2"),
            event("e4", "view", 7200, uid="u2", iid="i2"),
        ]
    )
    out, report = clean(data)
    ev = out["events"].set_index("event_id")
    assert ev.loc["e1", "ts"] == T0 - pd.Timedelta(minutes=120)
    assert ev.loc["e2", "ts"] == T0 - pd.Timedelta(hours=4) + pd.Timedelta(minutes=330)
    assert ev.loc["e3", "ts"] == T0 + pd.Timedelta(hours=1)
    assert ev.loc["e4", "ts"] == T0 + pd.Timedelta(hours=2)
    assert ev.loc[["e1", "e2", "e3"], "ts_offset_minutes"].eq(0).all()
    assert pd.isna(ev.loc["e4", "ts_offset_minutes"])
    assert counts(report, "events") == ({"timezone_normalized": 2}, {})


def future_data() -> dict[str, pd.DataFrame]:
    now = pd.Timestamp(NOW)
    events = [
        event("e1", "view", updated_at=now - pd.Timedelta(hours=1)) | {"ts": now + pd.Timedelta(days=1)},
        event("e2", "view", iid="i2")
        | {"ts": now + pd.Timedelta(hours=2), "updated_at": now + pd.Timedelta(hours=3)},
        event("e3", "view", uid="u2") | {"ts": now + pd.Timedelta(seconds=299)},
    ]
    orders = [
        order("o1", created_at=now + pd.Timedelta(days=30), updated_at=T0),
        order("o2", created_at=now + pd.Timedelta(seconds=300)),
    ]
    return tables(orders=orders, events=events)


def test_future_timestamps_are_clamped() -> None:
    out, report = clean(future_data())
    now = pd.Timestamp(NOW)
    ev = out["events"].set_index("event_id")["ts"]
    assert ev["e1"] == now - pd.Timedelta(hours=1)  # its ingest time
    assert ev["e2"] == now  # ingest time itself in the future: the run time
    assert ev["e3"] == now + pd.Timedelta(seconds=299)  # within the tolerance
    od = out["orders"].set_index("order_id")["created_at"]
    assert od["o1"] == T0 and od["o2"] == now + pd.Timedelta(seconds=300)
    assert counts(report, "events") == ({"future_timestamp_clamped": 2}, {})
    assert counts(report, "orders") == ({"future_timestamp_clamped": 1}, {})


def test_future_timestamps_are_dropped() -> None:
    out, report = clean(future_data(), config(timestamps={"future_action": "drop"}))
    assert ids(out, "events") == ["e3"] and ids(out, "orders") == ["o2"]
    assert counts(report, "events") == ({}, {"future_timestamp_dropped": 2})
    assert counts(report, "orders") == ({}, {"future_timestamp_dropped": 1})


def test_now_may_be_timezone_aware() -> None:
    data = future_data()
    naive, r1 = clean_tables(data, CleaningConfig(), NOW)
    aware, r2 = clean_tables(data, CleaningConfig(), NOW.replace(tzinfo=UTC))
    assert r1.to_dict() == r2.to_dict()
    pd.testing.assert_frame_equal(naive["events"], aware["events"])


def funnel_events() -> list[dict[str, Any]]:
    return [
        event("e1", "impression", 10, request_id="r1", position=0),
        event("e2", "click", 5, request_id="r1"),  # before its impression
        event("e3", "view", 20, request_id="r1"),  # fine
        event("e4", "add_to_cart", 20, request_id="r1"),  # tie with the view: accepted
        event("e5", "purchase", 1, request_id="r1"),  # before everything
        event("e6", "click", 0, iid="i2", request_id="r1"),  # other item: its own funnel
        event("e7", "impression", 30, uid="u2", request_id="r2", position=0),
        event("e8", "click", 3, uid="u2"),  # no request: no funnel
    ]


def test_out_of_order_funnel_is_fixed() -> None:
    out, report = clean(tables(events=funnel_events()))
    ts = out["events"].set_index("event_id")["ts"]
    ms = pd.Timedelta(milliseconds=1)
    assert ts["e2"] == T0 + pd.Timedelta(seconds=10) + ms
    assert ts["e3"] == ts["e4"] == T0 + pd.Timedelta(seconds=20)
    assert ts["e5"] == ts["e4"] + ms
    assert ts["e6"] == T0 and ts["e8"] == T0 + pd.Timedelta(seconds=3)
    assert counts(report, "events") == ({"out_of_order_fixed": 2}, {})


def test_out_of_order_cascades_through_moved_events() -> None:
    events = [
        event("e1", "impression", 10, request_id="r1", position=0),
        event("e2", "click", 0, request_id="r1"),
        event("e3", "view", 0, request_id="r1"),
    ]
    out, report = clean(tables(events=events))
    ts = out["events"].set_index("event_id")["ts"]
    assert ts["e3"] == ts["e2"] + pd.Timedelta(milliseconds=1) > T0 + pd.Timedelta(seconds=10)
    assert counts(report, "events") == ({"out_of_order_fixed": 2}, {})


def test_out_of_order_fix_can_be_disabled() -> None:
    data = tables(events=funnel_events())
    out, report = clean(data, config(timestamps={"fix_out_of_order": False}))
    pd.testing.assert_series_equal(out["events"]["ts"], data["events"]["ts"])
    assert report.n_fixed() == 0


# --- events: duplicates ----------------------------------------------------------------------


def test_exact_duplicates_keep_smallest_event_id() -> None:
    same = {"request_id": "r1", "position": 3, "value": 1.0}
    data = tables(
        events=[
            event("e9", "click", 0, **same),
            event("e2", "click", 0, **same),
            event("e5", "click", 0, **same, scene="other"),
            event("e7", "click", 0, request_id="r1", position=3, value=2.0),
        ]
    )
    out, report = clean(data, config(duplicates={"near_window_seconds": 0}))
    # e7 differs in value: not an exact duplicate, but a near one (same ts) of e2
    assert ids(out, "events") == ["e2"]
    assert counts(report, "events") == ({}, {"exact_duplicate": 2, "near_duplicate": 1})


def test_near_duplicates_are_measured_from_the_last_kept_event() -> None:
    data = tables(
        events=[
            event("e1", "click", 0),
            event("e2", "click", 1.5),
            event("e3", "click", 3),
            event("e4", "click", 3.5),
            event("e5", "click", 5.0),
            event("e6", "view", 0.5),
            event("e7", "click", 0.5, uid="u2"),
        ]
    )
    out, report = clean(data)
    # e3 is 1.5 s after e2 but 3 s after the last kept e1; e5 is exactly 2 s after e3
    assert ids(out, "events") == ["e1", "e3", "e6", "e7"]
    assert counts(report, "events") == ({}, {"near_duplicate": 3})


def test_near_duplicate_impressions_key_on_request_and_position() -> None:
    data = tables(
        events=[
            event("e1", "impression", 0, request_id="r1", position=0),
            event("e2", "impression", 0, request_id="r1", position=5),  # same list, other slot
            event("e3", "impression", 1, request_id="r2", position=0),  # another request
            event("e4", "impression", 1, request_id="r1", position=0),  # client double-fire
            event("e5", "impression", 0),
            event("e6", "impression", 1),  # no request at all
        ]
    )
    out, report = clean(data)
    assert ids(out, "events") == ["e1", "e2", "e3", "e5"]
    assert counts(report, "events") == ({}, {"near_duplicate": 2})


def test_near_duplicate_window_zero_only_collapses_equal_timestamps() -> None:
    data = tables(
        events=[
            event("e1", "click", 0, value=1.0),
            event("e2", "click", 0, value=2.0),
            event("e3", "click", 0.001),
        ]
    )
    out, report = clean(data, config(duplicates={"near_window_seconds": 0}))
    assert ids(out, "events") == ["e1", "e3"]
    assert counts(report, "events") == ({}, {"near_duplicate": 1})


# --- events/orders: references and types -----------------------------------------------------


def test_unknown_references_are_dropped() -> None:
    data = tables(
        users=[user("u1"), user("u2", created_at=None)],  # u2 is dropped: its facts orphaned
        orders=[order("o1"), order("o2", uid="u2"), order("o3", iid="i9")],
        events=[
            event("e1"),
            event("e2", uid="u2"),
            event("e3", uid="u3"),
            event("e4", iid="i9"),
            event("e5", uid="u3", iid="i9"),
        ],
    )
    out, report = clean(data)
    assert ids(out, "orders") == ["o1"] and ids(out, "events") == ["e1"]
    assert counts(report, "orders") == ({}, {"unknown_user": 1, "unknown_item": 1})
    # a row with both references unknown is counted once, under the first rule
    assert counts(report, "events") == ({}, {"unknown_user": 3, "unknown_item": 1})


def test_references_to_absent_tables_are_not_checked() -> None:
    data = tables(events=[event("e1", uid="u9", iid="i9")])
    out, report = clean({"events": data["events"]})
    assert set(out) == {"events"} and ids(out, "events") == ["e1"]
    assert report.n_dropped() == 0


def test_unknown_event_type_is_dropped() -> None:
    data = tables(
        events=[event("e1", "click"), event("e2", "hover"), event("e3", "Click"), event("e4", "purchase", 10)]
    )
    out, report = clean(data)
    assert ids(out, "events") == ["e1", "e4"]
    assert counts(report, "events") == ({}, {"unknown_event_type": 2})


def test_report_helpers() -> None:
    report = CleaningReport()
    report.start("events", 5)
    report.fixed("events", "timezone_normalized", 2)
    report.fixed("events", "timezone_normalized", 1)
    report.dropped("events", "near_duplicate", 0)
    report.dropped("events", "near_duplicate", 1)
    report.finish("events", 4)
    assert report.to_dict() == {
        "tables": {
            "events": {
                "input": 5,
                "kept": 4,
                "fixed": {"timezone_normalized": 3},
                "dropped": {"near_duplicate": 1},
            }
        },
        "totals": {"input": 5, "kept": 4, "fixed": 3, "dropped": 1},
    }
    with pytest.raises(ValueError):
        report.dropped("events", "near_duplicate", -1)
