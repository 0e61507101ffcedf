"""Recommendations from a bundle, in process: recall -> features -> ranker -> top k.

The batch and single-user CLI commands use it; the online transformer runs the same chain
against the online store instead of the bundle's files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.errors import InvalidInput, PipelineError
from recsys.features.cross import CrossFeatures
from recsys.ranking.flow import CONTEXT_FEATURES
from recsys.ranking.model import Runtime, load_ranker
from recsys.recall.base import RecallContext
from recsys.recall.engine import RecallEngine
from recsys.steps.common import HISTORIES_FILE
from recsys.steps.features import read_features

MAX_K = 500


@dataclass
class Recommendation:
    item_id: str
    score: float
    channels: list[str]


class BundleRecommender:
    def __init__(self, bundle: Path, *, runtime: Runtime = "onnx", candidates: int = 300) -> None:
        if not (bundle / "manifest.json").exists():
            raise PipelineError(f"recommend: {bundle} is not a complete bundle (no manifest.json)")
        registry, users, items, _ = read_features(bundle / "features")
        self.cross = CrossFeatures(registry)
        self.user_ids = {str(u): i for i, u in enumerate(users["user_id"])}
        self.users = users[registry.vector_columns("user")].to_numpy(dtype=np.float32)
        self.item_ids = {str(v): i for i, v in enumerate(items["item_id"])}
        self.items = items[registry.vector_columns("item")].to_numpy(dtype=np.float32)
        self.user_defaults = np.asarray(registry.vector_defaults("user"), dtype=np.float32)
        self.recall = RecallEngine.load(bundle / "recall")
        hist = pd.read_parquet(bundle / HISTORIES_FILE)
        self.histories = {
            str(u): [i for i in h.split("|") if i]
            for u, h in zip(hist["user_id"], hist["items"], strict=True)
        }
        industry = hist["industry"] if "industry" in hist else pd.Series(None, index=hist.index)
        self.industries = {
            str(u): (v if isinstance(v, str) else None)
            for u, v in zip(hist["user_id"], industry, strict=True)
        }
        self.ranker = load_ranker(bundle / "ranker", runtime)
        recall_names, _ = self.recall.candidate_features([])
        expected = registry.ranker_columns + recall_names + CONTEXT_FEATURES
        if self.ranker.feature_names != expected or self.ranker.schema_hash != registry.schema_hash:
            raise PipelineError(
                f"recommend: the ranker in {bundle} was trained on other features (schema mismatch)"
            )
        self.candidates = candidates
        self.version = bundle.name

    def recommend(self, user_id: str, k: int = 10, exclude: set[str] | None = None) -> list[Recommendation]:
        if not 1 <= k <= MAX_K:
            raise InvalidInput(f"k: {k} is out of range (1..{MAX_K})")
        history = self.histories.get(user_id, [])
        ctx = RecallContext(
            history=history,
            user_industry=self.industries.get(user_id),
            exclude=set(history) | (exclude or set()),
        )
        cands = [c for c in self.recall.recall(user_id, ctx, k=self.candidates) if c.item_id in self.item_ids]
        if not cands:
            return []
        row = self.user_ids.get(user_id)
        user_vec = self.users[row] if row is not None else self.user_defaults
        item_vecs = self.items[[self.item_ids[c.item_id] for c in cands]]
        _, recall_x = self.recall.candidate_features(cands)
        X = np.hstack(
            [self.cross.ranking_matrix(user_vec, item_vecs), recall_x, np.zeros((len(cands), 1), np.float32)]
        )
        scores = self.ranker.score(X)
        order = np.argsort(-scores, kind="stable")[:k]
        return [Recommendation(cands[i].item_id, float(scores[i]), sorted(cands[i].channels)) for i in order]

    def batch(self, user_ids: list[str], k: int) -> pd.DataFrame:
        rows = []
        for user in user_ids:
            for rank, rec in enumerate(self.recommend(user, k), start=1):
                rows.append((user, rank, rec.item_id, round(rec.score, 6)))
        return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score"])
