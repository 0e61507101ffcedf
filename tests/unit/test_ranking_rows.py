"""The ranker's rows are what the chain ranks; the guard fails on inputs that give the label away.

The old way of making rows without impressions (each positive at position 0, its sampled
negatives at 1..4, with ``position`` a ranker input) is rebuilt here to show the guard fires on
it; the chain's candidate slates on a generated marketplace show it stays quiet on honest rows.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from recsys.chain.config import ChainConfig
from recsys.data.synthetic import SyntheticConfig, generate_marketplace
from recsys.errors import PipelineError
from recsys.evaluation.protocols import Positives, Protocol, split
from recsys.features.registry import load_registry
from recsys.ranking.flow import fit_stage
from recsys.ranking.rows import candidate_slates, check_holdout_auc, is_validation_user, leakage_guard
from recsys.ranking.trainer import RankingSet
from recsys.recall.config import load_recall_config
from recsys.settings import SOURCE_CONFIG_DIR


def old_sampled_rows(n_positives: int, negatives: int, seed: int) -> tuple[RankingSet, list[str]]:
    """The retired ``sampled_rows``: a slate per positive, ``position`` from the sampling order."""
    rng = np.random.default_rng(seed)
    X, y, groups = [], [], []
    for _ in range(n_positives):
        for position in range(negatives + 1):
            X.append([float(position), rng.random(), rng.random()])  # position, popularity, affinity
            y.append(1.0 if position == 0 else 0.0)
        groups.append(negatives + 1)
    return RankingSet(np.array(X, np.float32), np.array(y, np.float32), np.array(groups)), [
        "position", "item_popularity", "cross_affinity"
    ]  # fmt: skip


def test_the_guard_names_the_input_that_gives_the_label_away() -> None:
    rows, names = old_sampled_rows(200, 4, seed=1)
    with pytest.raises(PipelineError, match="the input 'position' alone separates the training labels"):
        leakage_guard(rows, names)
    honest = RankingSet(rows.X[:, 1:], rows.y, rows.groups)
    leakage_guard(honest, names[1:])  # noise separates nothing


def test_a_holdout_auc_near_one_is_an_error() -> None:
    check_holdout_auc(0.85)
    with pytest.raises(PipelineError, match="holdout AUC 0.9950 >= 0.99"):
        check_holdout_auc(0.995)


@pytest.fixture(scope="module")
def marketplace() -> dict:
    market = generate_marketplace(
        SyntheticConfig(users=300, items=120, days=14, seed=7, dirty_rate=0.0, start=datetime(2026, 1, 1))
    )
    return market.frames()


def test_candidate_slates_are_the_chains_candidates_labelled_by_what_came_next(marketplace: dict) -> None:
    registry = load_registry(SOURCE_CONFIG_DIR / "features.yaml")
    recall_cfg = load_recall_config(SOURCE_CONFIG_DIR / "recall.yaml")
    as_of = marketplace["events"]["ts"].max().to_pydatetime()
    part = split(
        marketplace, Protocol.parse("time-cut:0.8"), Positives(), recall_cfg.filter.exclude_seen, as_of
    )
    stage = fit_stage(part.train, part.as_of, registry, recall_cfg, ChainConfig())
    train, valid = candidate_slates(stage.chain, stage.states, stage.users, stage.items, part.relevant,
                                    part.shown, negatives=20, valid_share=0.3, seed=7)  # fmt: skip
    assert train.users and valid.users and not set(train.users) & set(valid.users)
    assert all(is_validation_user(u, 0.3, 7) for u in valid.users)
    user = valid.users[0]
    history, seen, industry = stage.states.of(user)
    cands = stage.chain.candidates(user, stage.chain.context(history, seen, industry))
    # a validation slate is every candidate of the user, with the chain's input, labelled by L
    X = valid.X[0]
    assert X.shape == (len(cands), len(stage.chain.columns))
    vectors, _ = stage.items.rows(cands.ids)
    np.testing.assert_array_equal(X, stage.chain.matrix(stage.users.row(user), vectors, cands))
    assert valid.y[0].tolist() == [i in part.relevant[user] for i in cands.ids]
    assert not set(cands.ids) & seen  # seen items are never candidates
    # training slates keep the positives, the shown-but-ignored ones and `negatives` others
    for u, y in zip(train.users, train.y, strict=True):
        assert y.any() and (~y).sum() <= 20 + len(part.shown.get(u, ()))
    both = train.to_set(len(stage.chain.columns))
    leakage_guard(both, stage.chain.columns)  # honest rows: the guard stays quiet
    assert "position" not in stage.chain.columns
