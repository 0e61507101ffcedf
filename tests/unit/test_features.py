"""FeatureEngineV2 and the registry: hand-checked values, point-in-time, registry errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from recsys.errors import ConfigError
from recsys.features.engine import FeatureEngineV2
from recsys.features.registry import load_registry, registry_from_dict

REGISTRY_PATH = Path(__file__).resolve().parents[2] / "config" / "features.yaml"
AS_OF = datetime(2026, 3, 10)


@pytest.fixture(scope="module")
def registry():
    return load_registry(REGISTRY_PATH)


def _tables(events: list[tuple[str, str, str, datetime, float | None]]) -> dict[str, pd.DataFrame]:
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "industry": ["retail", None],
            "region": ["eu", "us"],
            "created_at": [datetime(2026, 1, 1), datetime(2026, 3, 1)],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": ["i1", "i2", "i3"],
            "title": ["a", "b", "c"],
            "category": ["shoes", "shoes", "hats"],
            "industry": ["retail", "retail", "fashion"],
            "tags": ["red|run", "blue", "wool|warm|red"],
            "price": [10.0, 100.0, None],
            "status": ["active", "active", "inactive"],
            "created_at": [datetime(2026, 2, 1)] * 3,
        }
    )
    ev = pd.DataFrame(events, columns=["user_id", "item_id", "event_type", "ts", "value"])
    return {"users": users, "items": items, "events": ev}


def test_registry_declares_at_least_70_ranker_features(registry) -> None:
    assert len(registry.ranker_columns) >= 70
    assert len(set(registry.ranker_columns)) == len(registry.ranker_columns)
    assert {f.entity for f in registry.features} == {"user", "item", "cross"}


def test_hand_checked_user_and_item_values(registry) -> None:
    day = timedelta(days=1)
    events = [
        # u1: 4 impressions and 2 clicks on i1 in the last day, 1 purchase 3 days ago
        *[("u1", "i1", "impression", AS_OF - timedelta(hours=h), None) for h in (1, 2, 3, 4)],
        ("u1", "i1", "click", AS_OF - timedelta(hours=1), None),
        ("u1", "i1", "click", AS_OF - timedelta(hours=2), None),
        ("u1", "i2", "purchase", AS_OF - 3 * day - timedelta(hours=1), 100.0),
        # an event at as_of itself is not visible to the snapshot taken at as_of
        ("u1", "i2", "click", AS_OF, None),
        # u2: one impression 10 days ago
        ("u2", "i3", "impression", AS_OF - 10 * day, None),
    ]
    frames = FeatureEngineV2(registry).compute(_tables(events), AS_OF)
    users = frames.users.set_index("user_id")
    items = frames.items.set_index("item_id")
    assert list(frames.users.columns[2:]) == registry.vector_columns("user")
    assert users.loc["u1", "user_impression_count_1d"] == 4
    assert users.loc["u1", "user_click_count_1d"] == 2
    assert users.loc["u1", "user_click_count_30d"] == 2
    assert users.loc["u1", "user_purchase_count_7d"] == 1
    assert users.loc["u1", "user_gmv_30d"] == pytest.approx(100.0)
    assert users.loc["u2", "user_impression_count_7d"] == 0
    assert users.loc["u2", "user_impression_count_30d"] == 1
    # global CTR over 30 days = 2 clicks / 5 impressions; prior weight 20
    g = 2 / 5
    assert users.loc["u1", "user_ctr_1d"] == pytest.approx((2 + 20 * g) / (4 + 20), rel=1e-6)
    assert users.loc["u2", "user_ctr_30d"] == pytest.approx((0 + 20 * g) / (1 + 20), rel=1e-6)
    assert users.loc["u1", "user_days_since_last_click"] == 0
    assert users.loc["u1", "user_days_since_last_purchase"] == 3
    assert users.loc["u2", "user_days_since_last_click"] == 365  # the registry default
    assert users.loc["u1", "user_tenure_days"] == pytest.approx(68.0)
    assert users.loc["u1", "user_click_log_price_mean"] == pytest.approx(np.log1p(10.0), rel=1e-6)
    # u1's clicks were all on shoes: the category profile is one-hot
    assert users.loc["u1", "user_top_category_share_30d"] == 1.0
    assert users.loc["u1", "user_category_entropy_30d"] == pytest.approx(0.0, abs=1e-6)
    assert items.loc["i1", "item_click_count_1d"] == 2
    assert items.loc["i2", "item_purchase_count_30d"] == 1
    assert items.loc["i3", "item_price"] == pytest.approx(55.0)  # unknown price: global median
    assert items.loc["i3", "item_is_active"] == 0
    assert items.loc["i3", "item_tag_count"] == 3
    assert items.loc["i1", "item_age_days"] == pytest.approx(37.0)


def test_point_in_time_a_later_click_never_leaks_into_an_earlier_example(registry) -> None:
    """The leak case: u1 clicks i1 at 12:00 on day D; an example at 08:00 on D must not see it."""
    d = datetime(2026, 3, 8)
    events = [
        ("u1", "i1", "impression", d + timedelta(hours=8), None),
        ("u1", "i1", "click", d + timedelta(hours=12), None),
        ("u1", "i1", "click", d, None),  # exactly at the snapshot instant: not strictly before it
        ("u1", "i1", "impression", d - timedelta(days=2), None),
        ("u1", "i1", "click", d - timedelta(days=2) + timedelta(minutes=1), None),
    ]
    engine = FeatureEngineV2(registry)
    frames = engine.compute(_tables(events), AS_OF, snapshots=5)
    examples = pd.DataFrame(
        {
            "user_id": ["u1", "u1"],
            "item_id": ["i1", "i1"],
            "ts": [d + timedelta(hours=8), d + timedelta(hours=13)],
        }
    )
    matrix, kept = engine.point_in_time_matrix(frames, examples)
    assert kept.all()
    col = registry.ranker_columns.index("user_click_count_7d")
    item_col = registry.ranker_columns.index("item_click_count_7d")
    # the 08:00 example sees only the click two days earlier, not the 12:00 click
    assert matrix[0, col] == 1 and matrix[0, item_col] == 1
    # the 13:00 example uses the same snapshot (start of day D): still only data before D
    assert matrix[1, col] == 1
    # the snapshot at as_of sees both clicks
    assert frames.users.query("snapshot == 0 and user_id == 'u1'")["user_click_count_7d"].item() == 3


def test_rows_older_than_the_oldest_snapshot_are_not_kept(registry) -> None:
    engine = FeatureEngineV2(registry)
    frames = engine.compute(_tables([]), AS_OF, snapshots=2)
    examples = pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"], "ts": [AS_OF - timedelta(days=5)]})
    _, kept = engine.point_in_time_matrix(frames, examples)
    assert not kept.any()


def _raw_registry() -> dict:
    return yaml.safe_load(REGISTRY_PATH.read_text())


def test_duplicate_feature_name_is_named() -> None:
    raw = _raw_registry()
    raw["features"].append(dict(raw["features"][0]))
    with pytest.raises(ConfigError, match="duplicate feature name 'user_impression_count_1d'"):
        registry_from_dict(raw)


def test_unknown_dtype_is_named_with_the_entry() -> None:
    raw = _raw_registry()
    raw["features"][3]["dtype"] = "float128"
    with pytest.raises(ConfigError, match=r"feature 'user_click_count_1d': dtype: .*float128"):
        registry_from_dict(raw)


def test_declared_but_uncomputed_feature_fails_at_compute() -> None:
    raw = _raw_registry()
    raw["features"].insert(
        0,
        {
            "name": "user_shoe_size",
            "entity": "user",
            "dtype": "float32",
            "description": "not computed anywhere",
        },
    )
    engine = FeatureEngineV2(registry_from_dict(raw))
    with pytest.raises(Exception, match="declared but not computed \\['user_shoe_size'\\]"):
        engine.compute(_tables([]), AS_OF)


def test_cross_feature_without_code_fails_at_load() -> None:
    raw = _raw_registry()
    raw["features"].append(
        {"name": "cross_magic", "entity": "cross", "dtype": "float32", "description": "no function"}
    )
    with pytest.raises(ConfigError, match="cross feature\\(s\\) without code: cross_magic"):
        FeatureEngineV2(registry_from_dict(raw))
