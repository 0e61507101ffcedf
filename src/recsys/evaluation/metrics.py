"""Offline metrics: top-k list metrics, catalogue coverage and pointwise ranker metrics.

Every metric is one small function registered in ``METRICS`` under a *kind* that fixes its
signature, so adding a metric is one function plus one entry:

* ``user``: ``fn(recommended, relevant, k) -> float`` for one user's list; ``evaluate_lists``
  averages it over the evaluated users at every k.
* ``catalogue``: ``fn(recommendations, catalogue_size, k) -> float`` over all lists at once.
* ``score``: ``fn(labels, scores) -> float`` on pointwise labels (0/1) and model scores;
  ``evaluate_scores`` runs them all.

Relevance is binary. Within the top k a repeated item counts once (its first rank), so a list
padded with duplicates cannot inflate recall or NDCG. A user with no relevant item has every
list metric 0.0 (nothing can be hit); ``evaluate_lists`` leaves such users out instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from recsys.errors import InvalidInput

Item = Hashable
User = Hashable
MetricKind = Literal["user", "catalogue", "score"]


def _hits(recommended: Sequence[Item], relevant: AbstractSet[Item], k: int) -> list[bool]:
    """Per rank 1..k of the list: a relevant item at its first occurrence."""
    if k < 1:
        raise InvalidInput(f"k must be a positive integer, got {k}")
    seen: set[Item] = set()
    hits = []
    for item in list(recommended)[:k]:
        hits.append(item in relevant and item not in seen)
        seen.add(item)
    return hits


def recall_at_k(recommended: Sequence[Item], relevant: AbstractSet[Item], k: int) -> float:
    """Share of the relevant items found in the top k (denominator |relevant|, not min(k, ...))."""
    hits = _hits(recommended, relevant, k)
    return sum(hits) / len(relevant) if relevant else 0.0


def precision_at_k(recommended: Sequence[Item], relevant: AbstractSet[Item], k: int) -> float:
    """Relevant items in the top k over k: a list shorter than k is penalised for its empty slots."""
    return sum(_hits(recommended, relevant, k)) / k


def hit_rate_at_k(recommended: Sequence[Item], relevant: AbstractSet[Item], k: int) -> float:
    return float(any(_hits(recommended, relevant, k)))


def mrr_at_k(recommended: Sequence[Item], relevant: AbstractSet[Item], k: int) -> float:
    """1 / rank of the first relevant item in the top k, else 0."""
    for rank, hit in enumerate(_hits(recommended, relevant, k), start=1):
        if hit:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(recommended: Sequence[Item], relevant: AbstractSet[Item], k: int) -> float:
    """Binary-relevance NDCG with a log2(rank + 1) discount; the ideal list holds min(k, |relevant|) hits."""
    hits = _hits(recommended, relevant, k)
    dcg = sum(1.0 / math.log2(rank + 1) for rank, hit in enumerate(hits, start=1) if hit)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
    return dcg / ideal if ideal else 0.0


def catalogue_coverage(
    recommendations: Mapping[User, Sequence[Item]], catalogue_size: int, k: int | None = None
) -> float:
    """Distinct items in the top k of every list over the catalogue size (all lists, k=None: whole lists).

    Items outside the catalogue are not filtered: a coverage above 1 flags ids that should not
    be recommended at all.
    """
    if catalogue_size < 1:
        raise InvalidInput(f"catalogue_size must be a positive integer, got {catalogue_size}")
    distinct: set[Item] = set()
    for items in recommendations.values():
        distinct.update(list(items)[:k] if k is not None else items)
    return len(distinct) / catalogue_size


def _binary(labels: Iterable[Any], scores: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels, dtype=float)
    s = np.asarray(list(scores) if not isinstance(scores, np.ndarray) else scores, dtype=float)
    if y.ndim != 1 or y.shape != s.shape:
        raise InvalidInput(f"labels and scores must be 1-d of one length, got {y.shape} and {s.shape}")
    if not len(y):
        raise InvalidInput("labels and scores are empty")
    if not np.isin(y, (0.0, 1.0)).all():
        raise InvalidInput("labels must be 0/1")
    if not np.isfinite(s).all():
        raise InvalidInput("scores contain NaN or infinity")
    return y, s


def auc(labels: Iterable[Any], scores: Iterable[Any]) -> float:
    """ROC AUC as the Mann-Whitney statistic: P(score of a positive > a negative), ties count 1/2."""
    y, s = _binary(labels, scores)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise InvalidInput("AUC needs both positive and negative labels")
    order = np.argsort(s, kind="mergesort")
    _, first, counts = np.unique(s[order], return_index=True, return_counts=True)
    ranks = np.empty(len(s))
    # a tie group occupying 1-based ranks first+1..first+count gets their mean
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(labels: Iterable[Any], scores: Iterable[Any], eps: float = 1e-15) -> float:
    """Mean binary cross-entropy, probabilities clipped to [eps, 1 - eps] so one 0/1 score stays finite."""
    y, p = _binary(labels, scores)
    if ((p < 0) | (p > 1)).any():
        # clipping would silently turn logits or raw scores into near-certain probabilities
        raise InvalidInput("logloss needs probabilities in [0, 1], not raw scores")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


@dataclass(frozen=True)
class Metric:
    kind: MetricKind
    fn: Callable[..., float]


METRICS: dict[str, Metric] = {
    "recall": Metric("user", recall_at_k),
    "ndcg": Metric("user", ndcg_at_k),
    "hit_rate": Metric("user", hit_rate_at_k),
    "precision": Metric("user", precision_at_k),
    "mrr": Metric("user", mrr_at_k),
    "coverage": Metric("catalogue", catalogue_coverage),
    "auc": Metric("score", auc),
    "logloss": Metric("score", logloss),
}


def _of_kind(kind: MetricKind) -> dict[str, Callable[..., float]]:
    return {name: m.fn for name, m in METRICS.items() if m.kind == kind}


def evaluate_lists(
    recommendations: Mapping[User, Sequence[Item]],
    relevant: Mapping[User, AbstractSet[Item]],
    ks: Iterable[int] = (10, 20, 50),
    catalogue_size: int | None = None,
) -> dict[str, float]:
    """Every ``user`` metric at every k as ``"<name>@<k>"``, averaged over users with a relevant item.

    A user with relevant items but no list scores 0 on every metric: a model that cannot answer
    someone is worse than one that can, and dropping them would reward failing on hard users.
    Users with a list but nothing relevant are not averaged (their metrics are undefined) but
    their lists count for coverage. ``coverage@k`` is added when ``catalogue_size`` is given;
    ``users`` is the number of users averaged.
    """
    ks = tuple(ks)
    if not ks or any(not isinstance(k, int | np.integer) or k < 1 for k in ks):
        raise InvalidInput(f"ks must be positive integers, got {ks}")
    users = [u for u, rel in relevant.items() if rel]
    if not users:
        raise InvalidInput("no user has a relevant item: nothing to evaluate")
    per_user = _of_kind("user")
    sums = {f"{name}@{k}": 0.0 for k in ks for name in per_user}
    for user in users:
        recs = list(recommendations.get(user, ()))
        rel = set(relevant[user])
        for k in ks:
            for name, fn in per_user.items():
                sums[f"{name}@{k}"] += fn(recs, rel, k)
    result = {key: total / len(users) for key, total in sums.items()}
    if catalogue_size is not None:
        for name, fn in _of_kind("catalogue").items():
            for k in ks:
                result[f"{name}@{k}"] = fn(recommendations, catalogue_size, k)
    result["users"] = float(len(users))
    return result


def evaluate_scores(labels: Iterable[Any], scores: Iterable[Any]) -> dict[str, float]:
    """Every ``score`` metric (AUC, logloss, ...) on one set of pointwise predictions."""
    y, s = _binary(labels, scores)
    return {name: fn(y, s) for name, fn in _of_kind("score").items()}
