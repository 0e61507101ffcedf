"""The ranking chain, one piece for every caller.

    context (seen + request exclusions) -> recall candidates (channels, inactive filter, fusion)
    -> candidates with item vectors -> ranker input (user, item, cross, recall features)
    -> scores -> diversity (category cap) -> top k

``RankingChain.rank`` runs it in process (``recsys recommend``, the evaluation, training rows);
the transformer runs the same steps with its own governance: the channels in a thread pool with
timeouts (then ``fuse``), the vectors from the online store, the scores from the predictor (then
``order``). The ranker input's column list and its schema hash are defined here, once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.chain.config import ChainConfig
from recsys.chain.users import UserStates
from recsys.features.cross import CrossFeatures
from recsys.features.registry import FeatureRegistry
from recsys.recall.base import RecallContext
from recsys.recall.engine import RecallEngine
from recsys.recall.fusion import Candidates
from recsys.recall.lists import Hits

CATEGORY = "item_category_code"  # the item vector column the diversity step caps on
Scorer = Callable[[np.ndarray], np.ndarray]


def input_columns(registry: FeatureRegistry, recall: RecallEngine) -> list[str]:
    """The ranker's input, in order: user scalars, item scalars, cross features, recall features."""
    recall_names, _ = recall.candidate_features([])
    return registry.ranker_columns + recall_names


def input_schema_hash(registry: FeatureRegistry, columns: list[str]) -> str:
    """Changes with any column of the ranker input (name or order) or the vectors' layout."""
    payload = {"vectors": registry.schema_hash, "columns": columns}
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


@dataclass
class VectorTable:
    """Feature vectors by id, in process (the online store's ``lookup``, offline)."""

    index: dict[str, int]
    values: np.ndarray  # (n, width) float32
    defaults: np.ndarray  # a vector for an unknown id (users: the cold-start row)

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, id_column: str, columns: list[str], defaults: Iterable[float]
    ) -> VectorTable:
        ids = frame[id_column].astype(str).tolist()
        return cls(
            {u: n for n, u in enumerate(ids)},
            frame[columns].to_numpy(dtype=np.float32),
            np.asarray(list(defaults), dtype=np.float32),
        )

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def row(self, key: str) -> np.ndarray:
        n = self.index.get(key)
        return self.values[n] if n is not None else self.defaults

    def rows(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors of the known keys, found mask over ``keys``)."""
        rows = np.array([self.index.get(k, -1) for k in keys], np.int64)
        found = rows >= 0
        return self.values[rows[found]], found


@dataclass
class Ranked:
    """One user's answer, and what produced it (the evaluation reads the candidate scores)."""

    items: list[str]
    scores: list[float]
    channels: list[list[str]]
    candidates: Candidates
    candidate_scores: np.ndarray


class RankingChain:
    def __init__(self, recall: RecallEngine, registry: FeatureRegistry, config: ChainConfig) -> None:
        self.recall, self.config = recall, config
        self.cross = CrossFeatures(registry)
        self.columns = input_columns(registry, recall)
        self.schema_hash = input_schema_hash(registry, self.columns)
        self.category_col = registry.vector_columns("item").index(CATEGORY)

    @property
    def n_user_columns(self) -> int:
        """The input's leading columns, which depend on the user alone (sent once online)."""
        return self.cross.n_user_columns

    def context(
        self,
        history: list[str],
        seen: set[str],
        industry: str | None,
        scene: str | None = None,
        exclude: Iterable[str] = (),
    ) -> RecallContext:
        """What recall sees: the newest positives, and as exclusions the user's seen items
        (the bundle's seen policy) and the request's own."""
        return RecallContext(
            history=history, user_industry=industry, scene=scene, exclude=set(seen) | set(exclude)
        )

    def fuse(
        self, hits: dict[str, Hits], ctx: RecallContext, weights: dict[str, float] | None = None
    ) -> Candidates:
        """The channels' answers (already filtered: see ``RecallEngine.recall_hits``) fused into
        the ``candidates`` best, with the configured weights updated by ``weights``."""
        return self.recall.fuse(hits, self.config.candidates, ctx, {**self.recall.weights, **(weights or {})})

    def candidates(
        self, user_id: str, ctx: RecallContext, weights: dict[str, float] | None = None
    ) -> Candidates:
        """Every enabled channel in turn, then ``fuse``."""
        return self.fuse(self.recall.recall_hits(user_id, ctx), ctx, weights)

    def matrix(self, user: np.ndarray, items: np.ndarray, cands: Candidates) -> np.ndarray:
        """The ranker input of ``cands`` (with their item vectors ``items``), in ``columns`` order."""
        _, recall_x = self.recall.candidate_features(cands)
        return np.hstack([self.cross.ranking_matrix(user, items), recall_x])

    def categories(self, items: np.ndarray) -> np.ndarray:
        """The category codes of candidates with item vectors ``items`` (what ``order`` caps on)."""
        return items[:, self.category_col]

    def order(self, scores: np.ndarray, cats: np.ndarray, k: int) -> list[int]:
        """Positions of the top ``k``: best score first (ties: fused order), at most
        ``category_cap`` per category (``cats``: the candidates' category codes); capped ones
        fill up when too few others are left."""
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        cap = self.config.category_cap
        if not cap:
            return order[:k].tolist()
        picked: list[int] = []
        capped: list[int] = []
        per_cat: dict[float, int] = {}
        for i in order.tolist():
            if len(picked) == k:
                break
            cat = float(cats[i])
            if per_cat.get(cat, 0) < cap:
                per_cat[cat] = per_cat.get(cat, 0) + 1
                picked.append(i)
            else:
                capped.append(i)
        return picked + capped[: k - len(picked)]

    def rank(
        self,
        user_id: str,
        states: UserStates,
        users: VectorTable,
        items: VectorTable,
        scorer: Scorer,
        k: int,
        *,
        scene: str | None = None,
        exclude: Iterable[str] = (),
        weights: dict[str, float] | None = None,
    ) -> Ranked:
        """The whole chain in process for one user."""
        history, seen, industry = states.of(user_id)
        ctx = self.context(history, seen, industry, scene, exclude)
        cands = self.candidates(user_id, ctx, weights)
        vectors, found = items.rows(cands.ids)
        if not found.all():  # no vectors, no features: the online chain drops them too
            cands = cands.take(np.flatnonzero(found))
        if not len(cands):
            return Ranked([], [], [], cands, np.zeros(0, np.float32))
        scores = np.asarray(scorer(self.matrix(users.row(user_id), vectors, cands)), np.float32)
        picked = self.order(scores, self.categories(vectors), k)
        return Ranked(
            [cands.ids[i] for i in picked],
            [float(scores[i]) for i in picked],
            cands.channel_lists(picked),
            cands,
            scores,
        )
