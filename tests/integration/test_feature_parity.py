"""Offline = online: the ranker inputs built at serving time from vectors read back from the
online store (real Redis and SQLite) equal the ones the training path builds from the frames."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, _need

from recsys.cleaning.cleaner import clean_tables
from recsys.cleaning.config import CleaningConfig
from recsys.data.synthetic import SyntheticConfig, generate_marketplace
from recsys.features.engine import FeatureEngineV2
from recsys.features.registry import load_registry
from recsys.store import FeatureBlock, StoreSnapshot, open_store

AS_OF = datetime(2026, 2, 11)


@pytest.fixture(scope="module")
def computed():
    market = generate_marketplace(
        SyntheticConfig(users=200, items=120, days=10, seed=11, start=datetime(2026, 2, 1))
    )
    cleaned, _ = clean_tables(market.frames(), CleaningConfig(), AS_OF)
    engine = FeatureEngineV2(load_registry(REPO_ROOT / "config" / "features.yaml"))
    return engine, engine.compute(cleaned, AS_OF)


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'online.db'}")
        yield s
        s.close()
        return
    _need("Redis", "127.0.0.1", 6379)
    s = open_store("redis://127.0.0.1:6379/0", namespace=f"test-parity-{uuid.uuid4().hex[:8]}")
    yield s
    s.purge()
    s.close()


def test_offline_and_online_ranker_inputs_are_identical(computed, store) -> None:
    engine, frames = computed
    user_ids, users = frames.matrix("user")
    item_ids, items = frames.matrix("item")
    store.publish(
        StoreSnapshot(
            version="v1",
            blocks={
                "user": FeatureBlock("user", user_ids, frames.user_columns, users),
                "item": FeatureBlock("item", item_ids, frames.item_columns, items),
            },
        )
    )
    rng = np.random.default_rng(0)
    defaults = np.asarray(engine.registry.vector_defaults("user"), dtype=np.float32)
    for user in [*rng.choice(user_ids, 8, replace=False), "u-cold-start"]:
        candidates = list(rng.choice(item_ids, 60, replace=False))
        # offline: the training path, rows (user, item, ts) at the snapshot instant
        examples = pd.DataFrame({"user_id": user, "item_id": candidates, "ts": [AS_OF] * len(candidates)})
        offline, kept = engine.point_in_time_matrix(frames, examples)
        assert kept.all()
        # online: what the transformer does with one lookup
        found = store.lookup(str(user), [str(c) for c in candidates])
        assert found.found.all()
        user_vec = found.user if found.user is not None else defaults
        online = engine.cross.ranking_matrix(user_vec, found.items)
        assert online.shape == (60, len(engine.registry.ranker_columns))
        np.testing.assert_array_equal(online, offline)
