"""Evaluation: metrics against hand-computed values, splits, variant reports, Matomo round trip, summary."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from recsys.data.synthetic import Marketplace, SyntheticConfig, generate_marketplace, matomo_visits
from recsys.errors import InvalidInput
from recsys.evaluation import (
    METRICS,
    SCHEMA_VERSION,
    Metric,
    auc,
    catalogue_coverage,
    evaluate_lists,
    evaluate_scores,
    events_from_matomo,
    global_time_split,
    hit_rate_at_k,
    logloss,
    mrr_at_k,
    ndcg_at_k,
    per_user_last_n_split,
    precision_at_k,
    read_exposures,
    read_summary,
    recall_at_k,
    sample_ratio_mismatch,
    variant_report,
    wilson_interval,
    write_summary,
)

Z = 1.959963984540054
LOG2_3 = math.log2(3)

# ---------------------------------------------------------------- list metrics


def test_list_metrics_relevant_at_ranks_1_and_3() -> None:
    recs, rel = ["a", "b", "c", "d"], {"a", "c"}
    assert recall_at_k(recs, rel, 3) == 1.0
    assert precision_at_k(recs, rel, 3) == pytest.approx(2 / 3)
    assert hit_rate_at_k(recs, rel, 3) == 1.0
    assert mrr_at_k(recs, rel, 3) == 1.0
    # DCG 1/log2(2) + 1/log2(4); ideal: 2 hits at ranks 1, 2
    assert ndcg_at_k(recs, rel, 3) == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(recs, rel, 3) == pytest.approx(0.9197207891)


def test_list_metrics_first_hit_at_rank_2() -> None:
    recs, rel = ["x", "a", "y"], {"a", "b", "c"}
    assert recall_at_k(recs, rel, 2) == pytest.approx(1 / 3)
    assert precision_at_k(recs, rel, 2) == 0.5
    assert mrr_at_k(recs, rel, 2) == 0.5
    assert mrr_at_k(recs, rel, 1) == 0.0 and hit_rate_at_k(recs, rel, 1) == 0.0
    # ideal list for k=2 holds min(2, 3) = 2 hits
    assert ndcg_at_k(recs, rel, 2) == pytest.approx((1 / LOG2_3) / (1 + 1 / LOG2_3))


def test_k_larger_than_list() -> None:
    recs, rel = ["a"], {"a", "b"}
    assert recall_at_k(recs, rel, 5) == 0.5
    assert precision_at_k(recs, rel, 5) == pytest.approx(1 / 5)  # empty slots count against
    assert ndcg_at_k(recs, rel, 5) == pytest.approx(1 / (1 + 1 / LOG2_3))  # ideal min(5, 2) = 2
    assert ndcg_at_k(["a", "b"], rel, 50) == pytest.approx(1.0)


@pytest.mark.parametrize("fn", [recall_at_k, precision_at_k, hit_rate_at_k, mrr_at_k, ndcg_at_k])
def test_empty_list_and_no_relevant_score_zero(fn) -> None:
    assert fn([], {"a"}, 10) == 0.0
    assert fn(["a", "b"], set(), 10) == 0.0
    with pytest.raises(InvalidInput):
        fn(["a"], {"a"}, 0)


def test_repeated_item_counts_once() -> None:
    recs, rel = ["a", "a", "b"], {"a"}
    assert recall_at_k(recs, rel, 2) == 1.0
    assert precision_at_k(recs, rel, 2) == 0.5
    assert ndcg_at_k(recs, rel, 2) == 1.0


def test_catalogue_coverage() -> None:
    recs = {"u1": ["a", "b", "c"], "u2": ["a", "d"]}
    assert catalogue_coverage(recs, 10, 2) == pytest.approx(3 / 10)  # {a, b, d}
    assert catalogue_coverage(recs, 10) == pytest.approx(4 / 10)
    assert catalogue_coverage({}, 10, 5) == 0.0
    with pytest.raises(InvalidInput):
        catalogue_coverage(recs, 0)


def test_evaluate_lists_averages_over_users_with_relevant_items() -> None:
    recs = {"u1": ["a", "b"], "u2": ["y", "x"], "u5": ["z"]}
    # u3 has no list (counts as zeros), u4 has nothing relevant (left out), u5 only counts for coverage
    relevant = {"u1": {"a"}, "u2": {"x"}, "u3": {"b"}, "u4": set()}
    out = evaluate_lists(recs, relevant, ks=(1, 2), catalogue_size=10)
    assert out["users"] == 3
    assert out["recall@1"] == pytest.approx(1 / 3)
    assert out["hit_rate@1"] == pytest.approx(1 / 3)
    assert out["recall@2"] == pytest.approx(2 / 3)
    assert out["precision@2"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert out["mrr@2"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert out["ndcg@2"] == pytest.approx((1 + 1 / LOG2_3 + 0) / 3)
    assert out["coverage@1"] == pytest.approx(3 / 10)  # a, y, z
    assert out["coverage@2"] == pytest.approx(5 / 10)
    assert "coverage@1" not in evaluate_lists(recs, relevant, ks=(1,))


def test_evaluate_lists_rejects_nothing_to_evaluate() -> None:
    with pytest.raises(InvalidInput, match="no user"):
        evaluate_lists({"u": ["a"]}, {"u": set()})
    with pytest.raises(InvalidInput):
        evaluate_lists({"u": ["a"]}, {"u": {"a"}}, ks=(0,))


def test_a_new_metric_is_one_function_and_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    def first_is_relevant(recommended, relevant, k) -> float:
        return float(bool(recommended) and recommended[0] in relevant)

    monkeypatch.setitem(METRICS, "first", Metric("user", first_is_relevant))
    out = evaluate_lists({"u1": ["a"], "u2": ["b", "c"]}, {"u1": {"a"}, "u2": {"c"}}, ks=(5,))
    assert out["first@5"] == 0.5


# ---------------------------------------------------------------- ranker metrics


def _brute_force_auc(labels: list[int], scores: list[float]) -> float:
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_with_ties() -> None:
    labels, scores = [1, 0, 1, 0, 1], [0.9, 0.9, 0.5, 0.1, 0.5]
    # pairs (pos, neg): (.9,.9)=.5 (.9,.1)=1 (.5,.9)=0 (.5,.1)=1 twice -> 3.5 / 6
    assert auc(labels, scores) == pytest.approx(3.5 / 6)
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.integers(0, 2, 60).tolist()
        y[0], y[1] = 0, 1
        s = rng.integers(0, 5, 60).astype(float).tolist()  # few distinct values: many ties
        assert auc(y, s) == pytest.approx(_brute_force_auc(y, s))
    assert auc([0, 1], [0.2, 0.8]) == 1.0 and auc([0, 1], [0.8, 0.2]) == 0.0
    assert auc([0, 1, 0, 1], [0.3] * 4) == 0.5


def test_auc_and_logloss_reject_bad_input() -> None:
    with pytest.raises(InvalidInput, match="both"):
        auc([1, 1], [0.1, 0.2])
    with pytest.raises(InvalidInput):
        auc([1, 0], [0.1])
    with pytest.raises(InvalidInput):
        auc([2, 0], [0.1, 0.2])
    with pytest.raises(InvalidInput, match="probabilities"):
        logloss([1, 0], [2.5, -1.0])


def test_logloss_hand_value_and_clipping() -> None:
    assert logloss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert logloss([1], [0.0]) == pytest.approx(-math.log(1e-15))  # clipped, not infinite
    assert logloss([0, 1], [0.0, 1.0]) == pytest.approx(0.0, abs=1e-12)
    out = evaluate_scores([1, 0], [0.8, 0.4])
    assert set(out) == {"auc", "logloss"} and out["auc"] == 1.0


# ---------------------------------------------------------------- splits


def _interactions() -> pd.DataFrame:
    day = pd.Timestamp("2026-01-01")
    rows = [("a", f"i{d}", day + pd.Timedelta(days=d)) for d in (3, 1, 5, 2, 4)]  # out of order
    rows += [("b", "i1", day), ("b", "i2", day + pd.Timedelta(days=1)), ("c", "i1", day)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])
    frame.index = [f"row{i}" for i in range(len(frame))]  # a caller's index survives the split
    return frame


def test_per_user_last_n_split() -> None:
    train, test = per_user_last_n_split(_interactions(), n=3, min_train=1)
    assert sorted(test.loc[test["user_id"] == "a", "item_id"]) == ["i3", "i4", "i5"]
    assert sorted(train.loc[train["user_id"] == "a", "item_id"]) == ["i1", "i2"]
    assert test.loc[test["user_id"] == "b", "item_id"].tolist() == ["i2"]  # min(3, 2 - 1)
    assert "c" not in set(test["user_id"]) and "c" in set(train["user_id"])  # too few: all train
    assert sorted([*train.index, *test.index]) == sorted(_interactions().index)
    train2, test2 = per_user_last_n_split(_interactions(), n=3, min_train=2)
    assert "b" not in set(test2["user_id"]) and len(test2) == 3


def test_per_user_split_ties_follow_input_order() -> None:
    ts = pd.Timestamp("2026-01-01")
    frame = pd.DataFrame({"user_id": ["d", "d"], "item_id": ["first", "second"], "ts": [ts, ts]})
    _, test = per_user_last_n_split(frame, n=1)
    assert test["item_id"].tolist() == ["second"]


def test_split_input_errors() -> None:
    with pytest.raises(InvalidInput, match="lack"):
        per_user_last_n_split(pd.DataFrame({"user_id": ["a"]}))
    with pytest.raises(InvalidInput, match="missing"):
        per_user_last_n_split(pd.DataFrame({"user_id": ["a"], "ts": [pd.NaT]}))
    with pytest.raises(InvalidInput):
        per_user_last_n_split(_interactions(), n=0)
    with pytest.raises(InvalidInput):
        global_time_split(_interactions(), test_days=0)


def test_global_time_split() -> None:
    day = pd.Timestamp("2026-01-01")
    frame = pd.DataFrame({"user_id": "u", "ts": [day + pd.Timedelta(days=d) for d in range(10)]})
    train, test = global_time_split(frame, test_days=3)
    assert test["ts"].dt.day.tolist() == [8, 9, 10]  # after max - 3 days
    assert train["ts"].max() == day + pd.Timedelta(days=6)
    _, half = global_time_split(frame, test_days=0.5)
    assert len(half) == 1


# ---------------------------------------------------------------- experiments

T0 = datetime(2026, 1, 1, 10, 0)


def _exposure_log(tmp_path) -> pd.DataFrame:
    """A: r1 (3 items) + r2 (2) = 5 exposures; B: r3 (2) + r4 (4) = 6."""
    records = [
        {"request_id": "r1", "user_id": "u1", "items": ["i1", "i2", "i3"], "experiment_variant": "A"},
        {"request_id": "r2", "user_id": "u2", "items": ["i1", "i4"], "experiment_variant": "A"},
        {"request_id": "r3", "user_id": "u3", "items": ["i1", "i2"], "experiment_variant": "B"},
        {"request_id": "r4", "user_id": "u4", "items": ["i5", "i6", "i7", "i8"], "experiment_variant": "B"},
    ]
    path = tmp_path / "exposures.jsonl"
    lines = []
    for r in records:
        n = len(r["items"])
        r |= {"positions": list(range(n)), "scores": [1.0] * n, "channels": ["als"] * n, "degrade_level": 0,
              "model_version": f"m-{r['experiment_variant']}", "ts": "2026-01-01T10:00:00Z"}  # fmt: skip
        lines.append(json.dumps(r))
    path.write_text("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n", encoding="utf-8")
    return read_exposures(path)


def _events() -> pd.DataFrame:
    rows = [
        ("u1", "i1", "impression", "r1", None, 0),
        ("u1", "i1", "click", "r1", None, 5),
        ("u1", "i1", "click", "r1", None, 6),  # second click on one exposure counts once
        ("u1", "i1", "purchase", "r1", 100.0, 20),
        ("u1", "i2", "click", "r1", None, 7),
        ("u2", "i9", "click", "r2", None, 5),  # i9 was not in r2: unattributed
        ("u2", "i4", "purchase", "r2", 50.0, 9),  # its click was lost: still a click
        ("u3", "i1", "click", None, None, 30),  # no request id: user + item within 24 h -> r3
        ("u4", "i5", "click", None, None, 2 * 24 * 60),  # two days later: outside the window
        ("u4", "i6", "click", "r4", None, 3),
        ("u4", "i6", "view", "r4", None, 4),
        ("u4", "i6", "purchase", "r4", 30.0, 15),
        ("u4", "i6", "click", "r99", None, 3),  # request not in the log
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "request_id", "value", "minutes"])
    frame["ts"] = T0 + pd.to_timedelta(frame.pop("minutes"), unit="min")
    return frame


def test_variant_report_hand_computed(tmp_path) -> None:
    report = variant_report(_exposure_log(tmp_path), _events())
    a, b = report["variants"]["A"], report["variants"]["B"]
    assert report["control"] == "A" and report["attribution_window_hours"] == 24
    assert (a["requests"], a["exposures"], a["clicks"], a["purchases"]) == (2, 5, 3, 2)
    assert (b["requests"], b["exposures"], b["clicks"], b["purchases"]) == (2, 6, 2, 1)
    assert a["ctr"]["value"] == pytest.approx(3 / 5) and b["ctr"]["value"] == pytest.approx(2 / 6)
    assert a["cvr"]["value"] == pytest.approx(2 / 3) and b["cvr"]["value"] == pytest.approx(1 / 2)
    assert (a["gmv"], b["gmv"]) == (150.0, 30.0)
    assert a["model_versions"] == ["m-A"]
    # Wilson for 3 / 5: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    p, n = 0.6, 5
    low = (p + Z**2 / (2 * n) - Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n * n))) / (1 + Z**2 / n)
    assert a["ctr"]["ci95"][0] == pytest.approx(low) == pytest.approx(0.230724, abs=1e-6)
    assert a["ctr"]["ci95"][1] == pytest.approx(0.882379, abs=1e-6)
    # GMV per exposure A: [100, 0, 0, 50, 0] -> mean 30, sample variance 2000, se 20
    assert a["gmv_per_exposure"]["value"] == 30.0
    assert a["gmv_per_exposure"]["ci95"] == pytest.approx((30 - Z * 20, 30 + Z * 20))
    assert b["gmv_per_exposure"]["value"] == 5.0
    lift = report["lift"]["B"]
    assert lift["ctr"] == pytest.approx((2 / 6 - 3 / 5) / (3 / 5))
    assert lift["cvr"] == pytest.approx(-0.25) and lift["gmv_per_exposure"] == pytest.approx(-5 / 6)
    pooled = 5 / 11
    z = (2 / 6 - 3 / 5) / math.sqrt(pooled * (1 - pooled) * (1 / 6 + 1 / 5))
    assert lift["ctr_p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    assert report["unattributed"] == {"click": 3, "purchase": 0}


def test_variant_report_control_and_window(tmp_path) -> None:
    exposures, events = _exposure_log(tmp_path), _events()
    assert set(variant_report(exposures, events, control="B")["lift"]) == {"A"}
    with pytest.raises(InvalidInput, match="control"):
        variant_report(exposures, events, control="C")
    wide = variant_report(exposures, events, window=timedelta(days=3))
    assert wide["variants"]["B"]["clicks"] == 3  # the late click now falls inside the window
    narrow = variant_report(exposures, events, window=timedelta(minutes=10))
    assert narrow["variants"]["B"]["clicks"] == 1


def test_rates_without_denominator_are_none() -> None:
    exposures = pd.DataFrame({"request_id": ["r"], "user_id": ["u"], "items": [["i"]],
                              "experiment_variant": ["A"], "ts": [T0]})  # fmt: skip
    empty = pd.DataFrame(columns=["user_id", "item_id", "event_type", "request_id", "value", "ts"])
    a = variant_report(exposures, empty)["variants"]["A"]
    assert a["ctr"] == {"value": 0.0, "ci95": wilson_interval(0, 1)} and a["ctr"]["ci95"][0] == 0.0
    assert a["cvr"] == {"value": None, "ci95": None}


def test_variant_report_input_errors(tmp_path) -> None:
    exposures, events = _exposure_log(tmp_path), _events()
    with pytest.raises(InvalidInput, match="must be a list"):
        variant_report(exposures.assign(items="i1,i2"), events)
    with pytest.raises(InvalidInput, match="request_id"):
        variant_report(exposures.assign(request_id=None), events)
    with pytest.raises(InvalidInput, match="events lack"):
        variant_report(exposures, events.drop(columns="ts"))


def test_read_exposures_names_the_bad_line(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"request_id": "r1"}\n{not json\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"bad\.jsonl:2"):
        read_exposures(path)


def test_sample_ratio_mismatch() -> None:
    chi2, p = sample_ratio_mismatch({"A": 5000, "B": 5010}, {"A": 0.5, "B": 0.5})
    assert chi2 == pytest.approx(2 * 5**2 / 5005) and p > 0.9
    chi2, p = sample_ratio_mismatch({"A": 5000, "B": 5600}, {"A": 1, "B": 1})  # weights normalised
    assert chi2 == pytest.approx(2 * 300**2 / 5300) and p < 1e-6
    # df = 2: the chi-square survival function is exp(-x / 2)
    chi2, p = sample_ratio_mismatch({"A": 100, "B": 100, "C": 130}, {"A": 1, "B": 1, "C": 1})
    assert chi2 == pytest.approx(600 / 110) and p == pytest.approx(math.exp(-600 / 110 / 2))
    _, p = sample_ratio_mismatch({"A": 1000}, {"A": 0.5, "B": 0.5})  # a variant with no traffic
    assert p < 1e-100
    with pytest.raises(InvalidInput):
        sample_ratio_mismatch({"A": 10, "X": 10}, {"A": 0.5, "B": 0.5})


# ---------------------------------------------------------------- Matomo


@pytest.fixture(scope="module")
def market() -> Marketplace:
    return generate_marketplace(SyntheticConfig(users=50, items=30, days=3, seed=1, dirty_rate=0))


def _per_request(events: pd.DataFrame) -> pd.DataFrame:
    outcome = events[events["event_type"].isin(("click", "purchase"))]
    return (
        outcome.groupby(["request_id", "item_id", "event_type"])
        .agg(n=("event_type", "size"), gmv=("value", "sum"))
        .sort_index()
    )


def test_matomo_round_trip_keeps_clicks_purchases_and_gmv(market: Marketplace) -> None:
    parsed = events_from_matomo(matomo_visits(market))
    assert len(parsed) == len(market.events)
    assert (
        parsed["event_type"].value_counts().to_dict() == market.events["event_type"].value_counts().to_dict()
    )
    original, back = _per_request(market.events), _per_request(parsed)
    assert (original["n"] > 0).any() and "purchase" in original.index.get_level_values("event_type")
    pd.testing.assert_index_equal(back.index, original.index)
    assert back["n"].tolist() == original["n"].tolist()
    np.testing.assert_allclose(back["gmv"], original["gmv"], atol=1e-9)
    clicks = market.events[market.events["event_type"] == "click"].sort_values("event_id")
    parsed_clicks = parsed[parsed["event_type"] == "click"]
    assert sorted(parsed_clicks["position"].tolist()) == sorted(clicks["position"].tolist())


def test_variant_report_same_from_matomo_and_events_table(market: Marketplace) -> None:
    shown = market.events[market.events["event_type"] == "impression"].sort_values(["request_id", "position"])
    exposures = shown.groupby("request_id", as_index=False).agg(
        user_id=("user_id", "first"), items=("item_id", list), ts=("ts", "first")
    )
    exposures["experiment_variant"] = np.where(exposures["user_id"] < "u000025", "A", "B")
    direct = variant_report(exposures, market.events)
    via_matomo = variant_report(exposures, events_from_matomo(matomo_visits(market)))
    assert direct == via_matomo
    assert (
        sum(v["clicks"] for v in direct["variants"].values())
        == (market.events["event_type"] == "click").sum()
    )


def test_events_from_matomo_hand_made_visit() -> None:
    visit = {
        "idSite": 1, "idVisit": 7, "visitorId": "abc", "userId": None,
        "actionDetails": [
            {"type": "event", "eventCategory": "recsys", "eventAction": "click", "eventName": "i1",
             "eventValue": "2", "timestamp": 1767261600, "dimension1": "r1"},
            {"type": "event", "eventCategory": "video", "eventAction": "play", "eventName": "x",
             "timestamp": 1},
            {"type": "action", "url": "https://shop.example.com/item/i2", "timestamp": 1767261660,
             "customDimensions": {"1": "r1", "2": "home"}},
            {"type": "ecommerceOrder", "revenue": "100.00", "timestamp": 1767261700,
             "customDimensions": {"1": "r1"},
             "itemDetails": [{"itemSKU": "i1", "price": "33.33", "quantity": "3"}]},
            {"type": "ecommerceOrder", "revenue": 30, "timestamp": 1767261800, "itemDetails": [
                {"itemSKU": "i3", "price": 10, "quantity": 1},
                {"itemSKU": "i4", "price": 10, "quantity": 2}]},
        ],
    }  # fmt: skip
    ev = events_from_matomo([visit])
    assert ev["event_type"].tolist() == ["click", "view", "purchase", "purchase", "purchase"]
    assert set(ev["user_id"]) == {"visitor:abc"}
    assert ev["request_id"].tolist() == ["r1", "r1", "r1", None, None]
    assert ev.loc[0, "position"] == 2 and ev.loc[1, "scene"] == "home"
    assert ev.loc[0, "ts"] == pd.Timestamp("2026-01-01 10:00:00")
    assert ev["value"].iloc[2:].tolist() == [100.0, 10.0, 20.0]  # the order's revenue, not 3 x 33.33
    assert ev["event_id"].is_unique


# ---------------------------------------------------------------- summary


def test_summary_round_trip(tmp_path) -> None:
    path = tmp_path / "evaluation" / "summary.json"
    sections = {
        "offline": {"recall@10": np.float64(0.25), "users": np.int64(3)},
        "online": {"ci95": (0.1, 0.2), "variants": {"A"}},
    }
    written = write_summary(path, sections, now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]
    loaded = read_summary(path)
    assert loaded == written
    assert loaded["schema_version"] == SCHEMA_VERSION
    assert loaded["generated_at"] == "2026-01-02T03:04:05+00:00"
    assert loaded["sections"] == {
        "offline": {"recall@10": 0.25, "users": 3},
        "online": {"ci95": [0.1, 0.2], "variants": ["A"]},
    }


def test_summary_of_a_variant_report(tmp_path) -> None:
    report = variant_report(_exposure_log(tmp_path), _events())
    write_summary(tmp_path / "s.json", {"ab": report})
    assert read_summary(tmp_path / "s.json")["sections"]["ab"]["variants"]["A"]["clicks"] == 3


def test_summary_refuses_nan_and_bad_files(tmp_path) -> None:
    with pytest.raises(InvalidInput, match=r"sections\.offline\.auc"):
        write_summary(tmp_path / "s.json", {"offline": {"auc": float("nan")}})
    assert not list(tmp_path.iterdir())
    with pytest.raises(InvalidInput, match="no evaluation summary"):
        read_summary(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(InvalidInput):
        read_summary(tmp_path / "bad.json")
    (tmp_path / "new.json").write_text(
        json.dumps({"schema_version": SCHEMA_VERSION + 1, "generated_at": "x", "sections": {}}),
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput, match="schema version"):
        read_summary(tmp_path / "new.json")
