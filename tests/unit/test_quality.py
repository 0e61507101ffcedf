"""Data quality gate: each check type, PSI, scoring, baseline, reports, metrics, config errors."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recsys.cleaning.cleaner import clean_tables
from recsys.cleaning.config import CleaningConfig
from recsys.data.synthetic import SyntheticConfig, generate_marketplace
from recsys.errors import ConfigError, InvalidInput, RecsysError
from recsys.quality import (
    CHECKS,
    Baseline,
    PushError,
    QualityConfig,
    QualityReport,
    exposition,
    load_quality_config,
    parse_quality_config,
    psi,
    push,
    run_quality,
    write_html,
    write_json,
    write_textfile,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 10, 12, 0, 0)


def _config(*checks: dict[str, Any], **top: Any) -> QualityConfig:
    return parse_quality_config({"checks": list(checks), **top}, source="test.yaml")


def _run(
    tables: dict[str, pd.DataFrame], *checks: dict[str, Any], baseline: Baseline | None = None
) -> QualityReport:
    return run_quality(tables, _config(*checks), baseline=baseline, now=NOW)


def _only(report: QualityReport) -> Any:
    (result,) = report.checks
    return result


@pytest.fixture(scope="module")
def clean_source() -> tuple[dict[str, pd.DataFrame], datetime]:
    cfg = SyntheticConfig(users=200, items=150, days=5, seed=3)
    market = generate_marketplace(cfg)
    now = cfg.start + timedelta(days=cfg.days)
    raw = {t: getattr(market, t) for t in ("users", "items", "orders", "events")}
    cleaned, _ = clean_tables(raw, CleaningConfig(), now)
    # the default config also checks the feature tables the pipeline's features step writes
    from recsys.features.engine import FeatureEngineV2
    from recsys.features.registry import load_registry

    frames = FeatureEngineV2(load_registry(REPO_ROOT / "config" / "features.yaml")).compute(cleaned, now)
    cleaned["user_features"] = frames.users.drop(columns="snapshot")
    cleaned["item_features"] = frames.items.drop(columns="snapshot")
    return cleaned, now


# ---- config ----------------------------------------------------------------------------------


def test_default_config_loads_and_covers_the_source_tables() -> None:
    cfg = load_quality_config(REPO_ROOT / "config" / "quality.yaml")
    assert cfg.threshold == 97
    assert (cfg.psi.bins, cfg.psi.warn, cfg.psi.fail) == (10, 0.1, 0.25)
    by = {(c.table, c.type, c.column_label) for c in cfg.checks}
    for table, pk in (
        ("users", "user_id"),
        ("items", "item_id"),
        ("orders", "order_id"),
        ("events", "event_id"),
    ):
        assert (table, "unique", pk) in by
        assert (table, "volume_change", None) in by
    assert ("events", "freshness", "ts") in by and ("orders", "freshness", "created_at") in by
    assert ("items", "range", "price") in by and ("events", "drift", "event_type") in by
    assert {c.type for c in cfg.checks} <= set(CHECKS)


def test_default_config_passes_on_clean_data_and_fails_on_30_percent_null_prices(
    clean_source: tuple[dict[str, pd.DataFrame], datetime],
) -> None:
    tables, now = clean_source
    cfg = load_quality_config(REPO_ROOT / "config" / "quality.yaml")
    clean = run_quality(tables, cfg, baseline=None, now=now)
    assert clean.passed and clean.score == 100.0, [c.message for c in clean.failing]

    items = tables["items"].copy()
    items.loc[items.sample(frac=0.3, random_state=0).index, "price"] = np.nan
    report = run_quality({**tables, "items": items}, cfg, baseline=clean.baseline(), now=now)
    assert not report.passed and report.score < cfg.threshold
    failing = [c.name for c in report.failing]
    assert failing == ["items.price null_rate"]
    assert report.check("items.price null_rate").observed["null_rate"] == pytest.approx(0.3, abs=0.01)
    assert report.to_dict()["failing"] == failing


def test_unknown_check_type_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "quality.yaml"
    path.write_text(
        "checks:\n"
        "  - {table: items, type: null_rate, column: price, max: 0.05}\n"
        "  - {table: users, type: unique, column: user_id}\n"
        "  - {table: events, type: volume_change, max_change: 0.5}\n"
        "  - {table: events, type: freshnes, column: ts, max_age_hours: 48}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_quality_config(path)
    assert str(err.value) == (
        "quality.yaml: checks[3] (events.ts freshnes): unknown type 'freshnes' (did you mean 'freshness'?)"
    )


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"table": "items", "type": "null_rate", "column": "price", "maxx": 0.1}, "maxx"),
        ({"table": "events", "type": "freshness", "column": "ts"}, "max_age_hours"),
        ({"table": "events", "type": "volume_change", "column": "ts", "max_change": 0.5}, "whole table"),
        ({"table": "items", "type": "range", "column": "price"}, "at least one of"),
        ({"table": "items", "type": "null_rate", "column": "price", "max": 2}, "max"),
        ({"table": "items", "type": "drift"}, "'column' or 'columns' is required"),
        ({"table": "items", "type": "drift", "columns": ["a", "a"]}, "twice"),
        ({"table": "items", "type": "null_rate", "column": "price", "weight": -1}, "weight"),
    ],
)
def test_bad_entries_name_the_entry(entry: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        _config({"table": "users", "type": "row_count"}, entry)
    msg = str(err.value)
    assert msg.startswith(f"test.yaml: checks[1] ({entry['table']}"), msg
    assert fragment in msg


def test_duplicate_names_and_bad_psi_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"checks\[1\] \(users row_count\): duplicate"):
        _config({"table": "users", "type": "row_count"}, {"table": "users", "type": "row_count", "min": 5})
    with pytest.raises(ConfigError, match="psi"):
        _config(psi={"warn": 0.5, "fail": 0.25})
    with pytest.raises(ConfigError, match="threshold"):
        _config(threshold=120)
    with pytest.raises(ConfigError, match="unknown"):
        parse_quality_config({"unknown": 1}, source="q.yaml")
    assert issubclass(ConfigError, RecsysError)


# ---- checks ----------------------------------------------------------------------------------


def test_null_rate() -> None:
    df = pd.DataFrame({"price": [1.0, None, 3.0, 4.0], "id": ["a", "b", "c", "d"]})
    ok = _only(_run({"items": df}, {"table": "items", "type": "null_rate", "column": "price", "max": 0.25}))
    bad = _only(_run({"items": df}, {"table": "items", "type": "null_rate", "column": "price", "max": 0.2}))
    assert ok.passed and ok.score == 1.0 and ok.observed["null_rate"] == 0.25
    assert not bad.passed and bad.score == 0.0 and bad.expected == {"max": 0.2}


def test_null_rate_over_all_columns_gives_partial_credit() -> None:
    df = pd.DataFrame({"id": ["a", "b"], "f1": [1.0, 2.0], "f2": [None, 1.0], "f3": [0.5, 0.1]})
    r = _only(_run({"item_features": df}, {"table": "item_features", "type": "null_rate", "columns": "*"}))
    assert not r.passed and r.score == pytest.approx(0.75)
    assert r.columns == ["id", "f1", "f2", "f3"] and r.column == "*"
    assert r.observed["failed"] == 1 and "f2" in r.observed["failing"]


def test_range() -> None:
    df = pd.DataFrame({"price": [0.0, 1.0, 2.0, None], "pos": pd.array([0, 1, 2, None], dtype="Int64")})
    gt0 = _only(_run({"items": df}, {"table": "items", "type": "range", "column": "price", "gt": 0}))
    ge0 = _only(_run({"items": df}, {"table": "items", "type": "range", "column": "price", "min": 0}))
    tolerant = _only(
        _run(
            {"items": df},
            {"table": "items", "type": "range", "column": "price", "gt": 0, "max_violations": 0.4},
        )
    )
    pos = _only(_run({"items": df}, {"table": "items", "type": "range", "column": "pos", "min": 0, "max": 1}))
    assert not gt0.passed and gt0.observed["violations"] == 1
    assert gt0.observed["violation_share"] == pytest.approx(1 / 3)
    assert ge0.passed and tolerant.passed
    assert not pos.passed and pos.observed["max"] == 2.0


def test_range_on_text_column_fails_without_raising() -> None:
    df = pd.DataFrame({"price": ["a", "b"]})
    r = _only(_run({"items": df}, {"table": "items", "type": "range", "column": "price", "min": 0}))
    assert not r.passed and "not numeric" in r.message


def test_unique() -> None:
    df = pd.DataFrame({"user_id": ["a", "b", "b"], "day": [1, 1, 2]})
    single = _only(_run({"users": df}, {"table": "users", "type": "unique", "column": "user_id"}))
    composite = _only(
        _run({"users": df}, {"table": "users", "type": "unique", "columns": ["user_id", "day"]})
    )
    assert not single.passed and single.observed["duplicates"] == 1
    assert composite.passed


def test_freshness() -> None:
    df = pd.DataFrame({"ts": [NOW - timedelta(hours=60), NOW - timedelta(hours=30)]})
    ok = _only(
        _run({"events": df}, {"table": "events", "type": "freshness", "column": "ts", "max_age_hours": 48})
    )
    stale = _only(
        _run({"events": df}, {"table": "events", "type": "freshness", "column": "ts", "max_age_hours": 24})
    )
    assert ok.passed and ok.observed["age_hours"] == pytest.approx(30)
    assert not stale.passed
    # an aware run time is the same instant as the naive UTC one
    cfg = _config({"table": "events", "type": "freshness", "column": "ts", "max_age_hours": 48})
    aware = run_quality({"events": df}, cfg, baseline=None, now=NOW.replace(tzinfo=UTC))
    assert _only(aware).observed["age_hours"] == pytest.approx(30)
    empty = _only(
        _run(
            {"events": df.iloc[:0]},
            {"table": "events", "type": "freshness", "column": "ts", "max_age_hours": 1},
        )
    )
    assert empty.passed and empty.skipped and empty.message == "skipped: table is empty"
    no_ts = _only(
        _run(
            {"events": pd.DataFrame({"ts": [None, None]})},
            {"table": "events", "type": "freshness", "column": "ts", "max_age_hours": 1},
        )
    )
    assert not no_ts.passed and not no_ts.skipped and "no timestamps" in no_ts.message


def test_checks_on_an_empty_table_are_skipped_and_not_scored() -> None:
    # an empty table reads back from Parquet with object columns (MovieLens has no orders)
    orders = pd.DataFrame({"amount": pd.Series([], dtype=object), "created_at": pd.Series([], dtype=object)})
    report = _run(
        {"orders": orders, "t": pd.DataFrame({"a": [1.0, None]})},
        {"table": "orders", "type": "range", "column": "amount", "min": 0},
        {"table": "orders", "type": "freshness", "column": "created_at", "max_age_hours": 72},
        {"table": "t", "type": "null_rate", "column": "a"},  # fails: the only scored check
    )
    assert [(c.passed, c.skipped) for c in report.checks] == [(True, True), (True, True), (False, False)]
    assert report.score == 0.0
    assert [c.name for c in report.skipped] == ["orders.amount range", "orders.created_at freshness"]
    assert report.to_dict()["summary"] == {"checks": 3, "failed": 1, "skipped": 2}


def test_volume_change() -> None:
    check = {"table": "events", "type": "volume_change", "max_change": 0.5}
    first = _run({"events": pd.DataFrame({"x": range(100)})}, check)
    assert _only(first).passed and "no baseline" in _only(first).message
    base = first.baseline()
    grown = _only(_run({"events": pd.DataFrame({"x": range(140)})}, check, baseline=base))
    halved = _only(_run({"events": pd.DataFrame({"x": range(40)})}, check, baseline=base))
    assert grown.passed and grown.observed["change"] == pytest.approx(0.4)
    assert not halved.passed and halved.observed == {"rows": 40, "baseline_rows": 100, "change": -0.6}


def test_row_count_and_accepted_values() -> None:
    df = pd.DataFrame({"event_type": ["click", "view", "bogus", None]})
    rows = {"table": "events", "type": "row_count", "min": 5}
    values = {
        "table": "events",
        "type": "accepted_values",
        "column": "event_type",
        "values": ["click", "view"],
    }
    report = _run({"events": df}, rows, values)
    assert [c.passed for c in report.checks] == [False, False]
    assert report.checks[1].observed["examples"] == ["bogus"]
    assert _only(_run({"events": df}, {**rows, "min": 4})).passed


def test_missing_table_and_column_fail_with_a_message() -> None:
    report = _run(
        {"items": pd.DataFrame({"price": [1.0]})},
        {"table": "users", "type": "unique", "column": "user_id"},
        {"table": "items", "type": "null_rate", "column": "cost"},
        {"table": "items", "type": "drift", "columns": ["price", "cost"]},
    )
    missing_table, missing_col, partial = report.checks
    assert not missing_table.passed and "table 'users' is missing" in missing_table.message
    assert not missing_col.passed and "column 'cost' is missing" in missing_col.message
    assert not partial.passed and partial.score == 0.5
    assert report.score == pytest.approx(100 * 0.5 / 3)


# ---- drift / PSI -----------------------------------------------------------------------------


def test_psi_by_hand() -> None:
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([0.2] * 5, [0.2] * 5) == 0.0


def test_drift_psi_near_zero_for_same_distribution_and_high_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    base_x, same_x, shifted_x = rng.normal(0, 1, 20_000), rng.normal(0, 1, 20_000), rng.normal(1, 1, 20_000)
    check = {"table": "events", "type": "drift", "column": "x"}
    first = _run({"events": pd.DataFrame({"x": base_x})}, check)
    assert _only(first).passed and "no baseline" in _only(first).message
    baseline = first.baseline()

    same = _only(_run({"events": pd.DataFrame({"x": same_x})}, check, baseline=baseline))
    shifted = _only(_run({"events": pd.DataFrame({"x": shifted_x})}, check, baseline=baseline))
    assert same.passed and same.observed["psi"] < 0.01
    assert not shifted.passed and shifted.observed["psi"] > 0.25

    # the same PSI by hand: deciles of the baseline, open outer bins, sum (c - b) ln(c / b)
    cuts = np.quantile(base_x, np.linspace(0, 1, 11))[1:-1]
    bins = [-1e9, *cuts, 1e9]
    b = np.histogram(base_x, bins=bins)[0] / base_x.size
    c = np.histogram(shifted_x, bins=bins)[0] / shifted_x.size
    by_hand = float(np.sum((c - b) * np.log(c / b)))
    assert shifted.detail["x"]["psi"] == pytest.approx(by_hand, rel=1e-9)
    assert shifted.detail["x"]["baseline"] == pytest.approx(list(b))


def test_drift_on_categorical_shares() -> None:
    check = {"table": "events", "type": "drift", "column": "event_type"}
    base = pd.DataFrame({"event_type": ["impression"] * 90 + ["click"] * 10})
    baseline = _run({"events": base}, check).baseline()
    assert baseline.column("events", "event_type").categories == {"impression": 0.9, "click": 0.1}
    same = _only(_run({"events": base.sample(frac=1, random_state=1)}, check, baseline=baseline))
    moved = pd.DataFrame({"event_type": ["impression"] * 50 + ["click"] * 30 + ["purchase"] * 20})
    drifted = _only(_run({"events": moved}, check, baseline=baseline))
    assert same.passed and same.observed["psi"] == pytest.approx(0.0, abs=1e-12)
    assert not drifted.passed and "__other__" in drifted.detail["event_type"]["labels"]


def test_drift_over_all_numeric_feature_columns_scores_the_share_under_fail() -> None:
    rng = np.random.default_rng(1)
    n = 5_000

    def features(shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "item_id": [f"i{i}" for i in range(n)],
                "f1": rng.normal(0, 1, n),
                "f2": rng.normal(0, 1, n),
                "f3": rng.normal(shift, 1, n),
                "f4": rng.exponential(1, n),
            }
        )

    check = {"table": "item_features", "type": "drift", "columns": "*", "weight": 2}
    baseline = _run({"item_features": features(0)}, check).baseline()
    assert set(baseline.tables["item_features"].columns) == {"f1", "f2", "f3", "f4"}
    r = _only(_run({"item_features": features(1.0)}, check, baseline=baseline))
    assert r.columns == ["f1", "f2", "f3", "f4"]
    assert not r.passed and r.score == pytest.approx(0.75)
    assert list(r.observed["failing"]) == ["f3"]


# ---- score and baseline ----------------------------------------------------------------------


def test_score_is_the_weighted_mean_of_check_scores() -> None:
    df = pd.DataFrame({"a": [1.0, None], "b": [1.0, 2.0], "c": [None, None], "d": [0.0, 0.0]})
    report = _run(
        {"t": df},
        {"table": "t", "type": "null_rate", "column": "b", "weight": 3},  # 1.0
        {"table": "t", "type": "null_rate", "column": "a", "weight": 2},  # 0.0
        {
            "table": "t",
            "type": "null_rate",
            "columns": ["a", "b", "c", "d"],
            "name": "all",
            "weight": 5,
        },  # 0.5
        {"table": "t", "type": "row_count", "min": 10, "weight": 0},  # reported, not scored
    )
    assert [c.score for c in report.checks] == [1.0, 0.0, 0.5, 0.0]
    assert report.score == pytest.approx(100 * (3 * 1.0 + 2 * 0.0 + 5 * 0.5) / (3 + 2 + 5))
    assert report.threshold == 97 and not report.passed
    assert [c.name for c in report.failing] == ["t.a null_rate", "all", "t row_count"]


def test_baseline_round_trip_and_carry_over(tmp_path: Path) -> None:
    check = {"table": "events", "type": "drift", "column": "x"}
    first = _run({"events": pd.DataFrame({"x": np.arange(100.0)}), "users": pd.DataFrame({"u": [1]})}, check)
    path = tmp_path / "state" / "baseline.json"
    first.baseline().save(path)
    assert [p.name for p in path.parent.iterdir()] == ["baseline.json"]  # no temp file left behind
    loaded = Baseline.load(path)
    assert loaded.to_dict() == first.baseline().to_dict()
    assert loaded.rows("users") == 1 and loaded.column("events", "x").kind == "numeric"
    assert len(loaded.column("events", "x").edges) == 11

    # a later run over other tables keeps the tables it did not see
    later = _run({"item_features": pd.DataFrame({"f": [1.0, 2.0]})}, baseline=loaded)
    merged = later.baseline()
    assert set(merged.tables) == {"events", "users", "item_features"}
    assert Baseline.load_if_exists(tmp_path / "nope.json") is None
    path.write_text("{not json")
    with pytest.raises(InvalidInput, match="corrupt"):
        Baseline.load(path)


# ---- reports and metrics ---------------------------------------------------------------------


def _mixed_report() -> QualityReport:
    rng = np.random.default_rng(2)
    check_drift = {"table": "events", "type": "drift", "column": "x"}
    checks = (
        check_drift,
        {"table": "events", "type": "null_rate", "column": "<script>alert(1)</script>", "weight": 2},
        {"table": "events", "type": "row_count", "min": 1},
    )
    baseline = _run({"events": pd.DataFrame({"x": rng.normal(0, 1, 2000)})}, *checks).baseline()
    return _run({"events": pd.DataFrame({"x": rng.normal(2, 1, 2000)})}, *checks, baseline=baseline)


def test_html_report_is_self_contained_and_escaped(tmp_path: Path) -> None:
    report = _mixed_report()
    path = tmp_path / "quality.html"
    write_html(report, path)
    page = path.read_text()
    assert f"{report.score:.2f}" in page and "FAIL" in page
    assert "<svg" in page and page.count("<svg") >= 2  # score bars + one drift histogram
    for c in report.checks:
        assert re.search(re.escape(c.name.replace("<", "&lt;").replace(">", "&gt;")), page)
    assert "<script>" not in page
    assert not re.search(r"https?://", page)


def test_json_report(tmp_path: Path) -> None:
    report = _mixed_report()
    path = tmp_path / "out" / "quality.json"
    write_json(report, path)
    data = json.loads(path.read_text())
    assert data["score"] == pytest.approx(report.score, abs=1e-4)
    assert data["passed"] is False and data["threshold"] == 97
    assert {c["name"] for c in data["checks"]} == {c.name for c in report.checks}
    assert data["failing"] == [c.name for c in report.failing]


def test_text_exposition_parses_and_holds_the_score(tmp_path: Path) -> None:
    report = _mixed_report()
    path = tmp_path / "quality.prom"
    write_textfile(report, path)
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    assert path.read_text() == exposition(report)
    (score,) = families["recsys_data_quality_score"].samples
    assert score.value == pytest.approx(report.score)
    assert families["recsys_data_quality_threshold"].samples[0].value == 97
    passed = {s.labels["check"]: s.value for s in families["recsys_data_quality_check_passed"].samples}
    assert passed == {c.name: float(c.passed) for c in report.checks}
    (psi_sample,) = families["recsys_data_quality_psi"].samples
    assert psi_sample.labels == {"table": "events", "column": "x"} and psi_sample.value > 0.25
    ts = families["recsys_data_quality_last_run_timestamp_seconds"].samples[0].value
    assert ts == NOW.replace(tzinfo=UTC).timestamp()


def test_push_failure_names_the_url() -> None:
    url = "http://127.0.0.1:9"  # discard port: nothing listens there
    with pytest.raises(PushError, match=re.escape(url)):
        push(_mixed_report(), url, timeout=2)


def test_an_optional_column_a_source_never_had_is_not_applicable_not_a_failure() -> None:
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "price": [None, None, None]})
    checks = [
        {"table": "items", "type": "null_rate", "column": "price", "max": 0.05},
        {"table": "items", "type": "range", "column": "price", "gt": 0},
        {"table": "items", "type": "drift", "column": "price"},
    ]
    first = _run({"items": items}, *checks)
    assert first.passed and first.score == 100.0
    assert all(c.skipped and "not applicable: items.price has no value in the whole source" in c.message
               for c in first.checks)  # fmt: skip
    again = _run({"items": items}, *checks, baseline=first.baseline())
    assert again.passed and all(c.skipped for c in again.checks)


def test_an_optional_column_that_loses_its_values_still_fails() -> None:
    priced = pd.DataFrame({"item_id": ["a", "b", "c"], "price": [1.0, 2.0, 3.0]})
    check = {"table": "items", "type": "null_rate", "column": "price", "max": 0.05}
    before = _run({"items": priced}, check)
    lost = _run({"items": priced.assign(price=None)}, check, baseline=before.baseline())
    assert not lost.passed and not _only(lost).skipped and "null rate 1.0000 > 0.05" in _only(lost).message
    # a required column is never "not applicable", baseline or not
    ids = _run({"items": pd.DataFrame({"item_id": [None, None]})}, {"table": "items", "type": "null_rate",
                                                                    "column": "item_id"})  # fmt: skip
    assert not ids.passed


def test_stale_historical_data_points_at_as_of_latest() -> None:
    events = pd.DataFrame({"ts": [NOW - timedelta(days=400)]})
    check = {"table": "events", "type": "freshness", "column": "ts", "max_age_hours": 48}
    assert "--as-of latest" in _only(_run({"events": events}, check)).message
    recent = pd.DataFrame({"ts": [NOW - timedelta(days=3)]})
    assert "--as-of" not in _only(_run({"events": recent}, check)).message  # merely late: no hint
