"""The ranker's training rows: what the chain ranks, labelled by what each user did next.

A user with relevant items in the label part (the validation split's test side) contributes
one slate: the recall candidates the chain produces for them at the cut (channels and features
fitted on the part before it), each with exactly the input serving computes, labelled 1 when
the user acted on it afterwards. Candidates they were shown then and did not act on (where the
data has impressions) are always kept as negatives; of the rest, ``negatives`` are sampled
uniformly. No column says how a row was made, and ``leakage_guard`` fails the training when one
alone (or the ranker as a whole) separates the labels too well to be true.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from recsys.chain.chain import RankingChain, VectorTable
from recsys.chain.users import UserStates
from recsys.errors import PipelineError
from recsys.evaluation.metrics import auc
from recsys.ranking.trainer import RankingSet

GUARD_AUC = 0.99


@dataclass
class Slates:
    X: list[np.ndarray]
    y: list[np.ndarray]
    users: list[str]

    def to_set(self, width: int) -> RankingSet:
        if not self.X:
            return RankingSet(
                np.zeros((0, width), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
            )
        sizes = np.array([len(y) for y in self.y], np.int64)
        return RankingSet(np.vstack(self.X), np.concatenate(self.y).astype(np.float32), sizes)


def is_validation_user(user_id: str, share: float, seed: int) -> bool:
    """A stable, seeded choice of the validation users (the same user on every run)."""
    digest = hashlib.sha256(f"{seed}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def candidate_slates(
    chain: RankingChain,
    states: UserStates,
    users: VectorTable,
    items: VectorTable,
    relevant: Mapping[str, set[str]],
    shown: Mapping[str, set[str]],
    *,
    negatives: int,
    valid_share: float,
    seed: int,
) -> tuple[Slates, Slates]:
    """(training slates, validation slates); validation users keep every candidate, so that
    the objective and the number of trees are chosen on the ranking serving does."""
    rng = np.random.default_rng(seed)
    train, valid = Slates([], [], []), Slates([], [], [])
    for user in sorted(relevant):
        history, seen, industry = states.of(user)
        cands = chain.candidates(user, chain.context(history, seen, industry))
        vectors, found = items.rows(cands.ids)
        if not found.all():
            cands = cands.take(np.flatnonzero(found))
        if not len(cands):
            continue
        y = np.fromiter((i in relevant[user] for i in cands.ids), bool, len(cands))
        if not y.any():
            continue  # recall missed all of them: nothing to learn about the order
        X = chain.matrix(users.row(user), vectors, cands)
        if is_validation_user(user, valid_share, seed):
            valid.X.append(X), valid.y.append(y), valid.users.append(user)
            continue
        was_shown = np.fromiter((i in shown.get(user, ()) for i in cands.ids), bool, len(cands))
        rest = np.flatnonzero(~y & ~was_shown)
        drawn = rng.choice(rest, size=min(negatives, len(rest)), replace=False) if len(rest) else rest
        keep = np.sort(np.concatenate([np.flatnonzero(y | was_shown), drawn]))
        train.X.append(X[keep]), train.y.append(y[keep]), train.users.append(user)
    return train, valid


def leakage_guard(part: RankingSet, names: list[str], limit: float = GUARD_AUC) -> None:
    """Fail when one input alone separates the labels (AUC >= ``limit`` either way): such a
    column says how a row was made, not what the user will do."""
    if not len(part.y) or part.y.min() == part.y.max():
        return
    for j, name in enumerate(names):
        column = part.X[:, j]
        if column.min() == column.max():
            continue
        a = auc(part.y, column)
        if max(a, 1.0 - a) >= limit:
            raise PipelineError(
                f"ranking: the input {name!r} alone separates the training labels (AUC {a:.4f}): it must "
                "say something about the user and the item, not about how the row was made; remove it"
            )


def check_holdout_auc(value: float, limit: float = GUARD_AUC) -> None:
    if value >= limit:
        raise PipelineError(
            f"ranking: holdout AUC {value:.4f} >= {limit}: too good to be true for a recommender; an input "
            "carries the label (check the newest features and how the rows are labelled)"
        )
