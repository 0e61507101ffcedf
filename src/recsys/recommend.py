"""Recommendations from a bundle, in process: the ranking chain over the bundle's files.

``recsys recommend user|batch`` use it; the online transformer runs the same chain
(recsys.chain) against the online store and the predictor, so for the same user and bundle the
two lists are the same item for item.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recsys.chain.chain import RankingChain, VectorTable
from recsys.chain.config import ChainConfig
from recsys.chain.users import UserStates
from recsys.errors import InvalidInput, PipelineError
from recsys.ranking.model import Runtime, load_ranker
from recsys.recall.engine import RecallEngine
from recsys.steps.common import HISTORIES_FILE
from recsys.steps.features import read_features, read_registry

MAX_K = 500


@dataclass
class Recommendation:
    item_id: str
    score: float
    channels: list[str]


def load_chain(bundle: Path) -> tuple[RankingChain, dict]:
    """The bundle's chain (recall, feature layout, chain settings) and its ranker.json."""
    if not (bundle / "manifest.json").exists():
        raise PipelineError(f"{bundle} is not a complete bundle (no manifest.json)")
    registry = read_registry(bundle / "features")
    chain = RankingChain(RecallEngine.load(bundle / "recall"), registry, ChainConfig.load(bundle))
    ranker = json.loads((bundle / "ranker" / "ranker.json").read_text())
    if ranker["feature_names"] != chain.columns or ranker["schema_hash"] != chain.schema_hash:
        raise PipelineError(
            f"the ranker in {bundle} was trained on another input than its chain computes (schema "
            f"{ranker['schema_hash']} vs {chain.schema_hash})"
        )
    return chain, ranker


class BundleRecommender:
    def __init__(self, bundle: Path, *, runtime: Runtime = "onnx") -> None:
        self.chain, _ = load_chain(bundle)
        registry, users, items, _ = read_features(bundle / "features")
        self.users = VectorTable.from_frame(
            users, "user_id", registry.vector_columns("user"), registry.vector_defaults("user")
        )
        self.items = VectorTable.from_frame(
            items, "item_id", registry.vector_columns("item"), registry.vector_defaults("item")
        )
        self.states = UserStates.load(bundle / HISTORIES_FILE)
        self.ranker = load_ranker(bundle / "ranker", runtime)
        self.version = str(json.loads((bundle / "manifest.json").read_text()).get("version") or bundle.name)

    @property
    def user_ids(self) -> dict[str, int]:
        return self.users.index

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        exclude: set[str] | None = None,
        weights: dict[str, float] | None = None,
    ) -> list[Recommendation]:
        """``weights``: recall fusion weights over the configured ones (an experiment variant's)."""
        if not 1 <= k <= MAX_K:
            raise InvalidInput(f"k: {k} is out of range (1..{MAX_K})")
        ranked = self.chain.rank(
            user_id, self.states, self.users, self.items, self.ranker.score, k,
            exclude=exclude or (), weights=weights,
        )  # fmt: skip
        return [
            Recommendation(i, s, c)
            for i, s, c in zip(ranked.items, ranked.scores, ranked.channels, strict=True)
        ]

    def batch(self, user_ids: list[str], k: int) -> pd.DataFrame:
        rows = []
        for user in user_ids:
            for rank, rec in enumerate(self.recommend(user, k), start=1):
                rows.append((user, rank, rec.item_id, round(rec.score, 6)))
        return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score"])
