"""Train the ranker on what the chain ranks; measure the served chain beside the baselines.

::

    events up to as_of --protocol--> training part T --protocol--> fit part F + label part L
                                  \\-> test part        F: recall, features, user states -> chain_F
                                                       chain_F's candidates for L's users,
                                                       labelled by L -> the ranker
                                                       baselines tuned: fitted on F, scored on L
    T: recall, features, user states -> chain_T + the ranker -> served lists for the test users,
       beside the baselines fitted on T with the tuned parameters, on the same users

The protocol (``last-n:N`` or ``time-cut:Q``, see recsys.evaluation.protocols) is applied twice,
so the ranker and every tuned baseline learn only from data before the test part, and no choice
looks at it. The train step then refits recall on everything up to ``as_of`` for serving, with
the same ranker: what is served is the chain that was measured, one step later in time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from recsys.chain.chain import RankingChain, Scorer, VectorTable
from recsys.chain.config import ChainConfig
from recsys.chain.users import UserStates
from recsys.errors import InvalidInput, PipelineError
from recsys.evaluation.baselines import BASELINES, Baseline, grid
from recsys.evaluation.compare import compare
from recsys.evaluation.config import EvaluationConfig
from recsys.evaluation.metrics import evaluate_lists, evaluate_scores, ndcg_at_k
from recsys.evaluation.protocols import (
    AUTO,
    Positives,
    Split,
    best_split,
    choices,
    counterpart,
    require_users,
)
from recsys.features.engine import FeatureEngineV2
from recsys.features.registry import FeatureRegistry
from recsys.ranking.config import RankingConfig, TrainingConfig
from recsys.ranking.rows import candidate_slates, check_holdout_auc, leakage_guard
from recsys.ranking.trainer import TrainedRanker, train_ranker
from recsys.recall.config import RecallConfig
from recsys.recall.data import RecallData
from recsys.recall.engine import RecallEngine
from recsys.recall.filtering import SeenPolicy

log = logging.getLogger(__name__)


@dataclass
class Stage:
    """Recall, features and user states fitted on one part of the data, and the chain over them."""

    as_of: datetime
    recall: RecallEngine
    chain: RankingChain
    users: VectorTable
    items: VectorTable
    states: UserStates
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainingResult:
    ranker: TrainedRanker
    recall: RecallEngine  # the training part's: its items-only channels can be reused
    feature_names: list[str]
    schema_hash: str
    metrics: dict[str, float]
    evaluation: dict[str, Any]
    parity_rows: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def up_to(tables: dict[str, pd.DataFrame], as_of: datetime) -> dict[str, pd.DataFrame]:
    """The tables as they were at ``as_of``: later events and orders left out."""
    events = tables["events"]
    out = {**tables, "events": events[pd.to_datetime(events["ts"]) <= pd.Timestamp(as_of)]}
    orders = tables.get("orders")
    if orders is not None and len(orders):
        out["orders"] = orders[pd.to_datetime(orders["created_at"]) <= pd.Timestamp(as_of)]
    return out


def fit_stage(
    tables: dict[str, pd.DataFrame],
    as_of: datetime,
    registry: FeatureRegistry,
    recall_cfg: RecallConfig,
    chain_cfg: ChainConfig,
    reuse: RecallEngine | None = None,
) -> Stage:
    """``reuse``: an engine fitted on the same items, whose items-only channels are copied."""
    t = time.perf_counter()
    recall = RecallEngine(recall_cfg)
    recall.fit_all(RecallData.from_tables(tables, as_of, recall_cfg.interaction_weights), reuse)
    seconds = {"recall_fit": time.perf_counter() - t}
    t = time.perf_counter()
    frames = FeatureEngineV2(registry).compute(tables, as_of, snapshots=1)
    users = VectorTable.from_frame(
        frames.users, "user_id", registry.vector_columns("user"), registry.vector_defaults("user")
    )
    items = VectorTable.from_frame(
        frames.items, "item_id", registry.vector_columns("item"), registry.vector_defaults("item")
    )
    seconds["features"] = time.perf_counter() - t
    states = UserStates.build(tables, recall_cfg.filter.exclude_seen, chain_cfg.history_size)
    return Stage(as_of, recall, RankingChain(recall, registry, chain_cfg), users, items, states, seconds)


def _sample(users: list[str], limit: int, seed: int) -> list[str]:
    if len(users) <= limit:
        return users
    return sorted(np.random.default_rng(seed).choice(users, limit, replace=False).tolist())


def tune_baselines(
    inner: Split, fit_part: Stage, recall_cfg: RecallConfig, cfg: EvaluationConfig
) -> dict[str, dict[str, Any]]:
    """Each baseline's parameters with the best validation NDCG@max(k) (fitted on F, scored on L)."""
    users = _sample(inner.users, cfg.max_users, cfg.seed)
    k = max(cfg.ks)
    chosen: dict[str, dict[str, Any]] = {}
    for name in cfg.baselines:
        best: tuple[float, dict[str, Any]] | None = None
        for params in grid(BASELINES[name]):
            model = BASELINES[name](**params).fit(inner.train["events"], recall_cfg.interaction_weights)
            lists = model.recommend(users, k, fit_part.states.seen, fit_part.recall.exclusion.inactive)
            score = float(np.mean([ndcg_at_k(lists.get(u, []), inner.relevant[u], k) for u in users]))
            log.info("baseline %s %s: validation NDCG@%d %.4f", name, params, k, score)
            if best is None or score > best[0]:
                best = (score, params)
        assert best is not None
        chosen[name] = {**best[1], "validation_ndcg": round(best[0], 6)}
    return chosen


def _fit_baseline(
    name: str, params: dict[str, Any], events: pd.DataFrame, recall_cfg: RecallConfig
) -> Baseline:
    clean = {k: v for k, v in params.items() if k != "validation_ndcg"}
    return BASELINES[name](**clean).fit(events, recall_cfg.interaction_weights)


def score_with(trained: TrainedRanker) -> Scorer:
    """The trained booster as the chain's scorer (its ONNX export scores the same within 1e-5)."""
    return lambda X: trained.booster.predict(X)


def evaluate_served(
    outer: Split,
    stage: Stage,
    trained: TrainedRanker,
    tuned: dict[str, dict[str, Any]],
    recall_cfg: RecallConfig,
    cfg: EvaluationConfig,
) -> tuple[dict[str, Any], dict[str, float]]:
    """The served chain, its fused recall and every channel, beside the baselines, on the same users."""
    users = _sample(outer.users, cfg.max_users, cfg.seed)
    relevant = {u: outer.relevant[u] for u in users}
    k = max(cfg.ks)
    served: dict[str, list[str]] = {}
    fused: dict[str, list[str]] = {}
    channels: dict[str, dict[str, list[str]]] = {n: {} for n in stage.recall.names}
    labels, scores = [], []
    scorer = score_with(trained)
    for user in users:
        ranked = stage.chain.rank(user, stage.states, stage.users, stage.items, scorer, k)
        served[user] = ranked.items
        fused[user] = ranked.candidates.ids[:k]
        if len(ranked.candidates):
            labels.append(np.fromiter((i in relevant[user] for i in ranked.candidates.ids), bool))
            scores.append(ranked.candidate_scores)
        history, seen, industry = stage.states.of(user)
        for name, items in stage.recall.recall_channels(
            user, stage.chain.context(history, seen, industry)
        ).items():
            channels[name][user] = [i for i, _ in items[:k]]
    methods: dict[str, dict[str, list[str]]] = {"served": served, "fused": fused}
    for name, params in tuned.items():
        model = _fit_baseline(name, params, outer.train["events"], recall_cfg)
        methods[name] = model.recommend(users, k, stage.states.seen, stage.recall.exclusion.inactive)
    catalogue = len(stage.items.index)
    report = compare(methods, relevant, cfg.ks, catalogue, reference=cfg.reference,
                     resamples=cfg.bootstrap, seed=cfg.seed)  # fmt: skip
    y = np.concatenate(labels).astype(np.float64) if labels else np.zeros(0)
    s = np.concatenate(scores).astype(np.float64) if scores else np.zeros(0)
    holdout: dict[str, float] = {}
    if len(y) and 0 < y.sum() < len(y):
        probs = s if trained.objective == "binary" else 1.0 / (1.0 + np.exp(-s))
        holdout = {f"holdout_{m}": v for m, v in evaluate_scores(y, probs).items()}
        holdout["holdout_positive_rate"] = float(y.mean())
    ks = tuple(cfg.ks)
    evaluation = {
        "protocol": str(outer.protocol),
        "positives": outer.stats["positives"],
        "split": outer.stats,
        "users": len(users),
        "comparison": report,
        "end_to_end": {
            key: v
            for key, v in report["methods"]["served"].items()
            if "@" in key and "_vs_" not in key and not key.endswith("_ci95")
        },
        "channels": {
            n: evaluate_lists(lists, relevant, ks, catalogue) for n, lists in channels.items() if lists
        },
        "baselines": tuned,
    }
    return evaluation, holdout


def validation_split(outer: Split, positives: Positives, policy: SeenPolicy, cfg: TrainingConfig) -> Split:
    """The training part split again: the ranker's labels and the baselines' tuning. With
    ``label_protocol: auto``, by the test protocol or its counterpart, whichever leaves more
    label users (ratings over decades have few users on both sides of a global cut)."""
    protocols = (
        [outer.protocol, counterpart(outer.protocol)]
        if cfg.label_protocol == AUTO
        else choices(cfg.label_protocol, "training.label_protocol")
    )
    try:
        best = best_split(outer.train, protocols, positives, policy, outer.as_of)
    except InvalidInput as e:
        raise PipelineError(f"ranking: the validation split of the training part failed: {e}") from e
    require_users(best, cfg.min_label_users, "ranking")
    return best


def train_and_evaluate(
    tables: dict[str, pd.DataFrame],
    as_of: datetime,
    registry: FeatureRegistry,
    recall_cfg: RecallConfig,
    ranking_cfg: RankingConfig,
    training_cfg: TrainingConfig,
    chain_cfg: ChainConfig,
    eval_cfg: EvaluationConfig,
) -> TrainingResult:
    timings: dict[str, float] = {}
    positives, policy = eval_cfg.positives, recall_cfg.filter.exclude_seen
    outer = best_split(tables, eval_cfg.protocols, positives, policy, as_of)
    protocol = outer.protocol
    require_users(outer, eval_cfg.min_users, "evaluation")
    inner = validation_split(outer, positives, policy, training_cfg)

    fit_part = fit_stage(inner.train, inner.as_of, registry, recall_cfg, chain_cfg)
    timings.update({f"fit_part_{k}": v for k, v in fit_part.seconds.items()})
    t = time.perf_counter()
    train_slates, valid_slates = candidate_slates(
        fit_part.chain, fit_part.states, fit_part.users, fit_part.items, inner.relevant, inner.shown,
        negatives=training_cfg.negatives, valid_share=training_cfg.valid_share, seed=training_cfg.seed,
    )  # fmt: skip
    names = fit_part.chain.columns
    train_set, valid_set = train_slates.to_set(len(names)), valid_slates.to_set(len(names))
    timings["rows"] = time.perf_counter() - t
    if len(train_slates.users) < 2 or not valid_slates.users:
        raise PipelineError(
            f"ranking: recall found a relevant item for {len(train_slates.users) + len(valid_slates.users)}"
            f" of {len(inner.relevant)} label users under {protocol}; too few to train a ranker on"
        )
    leakage_guard(train_set, names)

    t = time.perf_counter()
    trained = train_ranker(train_set, valid_set, names, ranking_cfg)
    timings["ranker_fit"] = time.perf_counter() - t
    t = time.perf_counter()
    tuned = tune_baselines(inner, fit_part, recall_cfg, eval_cfg)
    timings["baselines_tune"] = time.perf_counter() - t

    train_part = fit_stage(outer.train, outer.as_of, registry, recall_cfg, chain_cfg, reuse=fit_part.recall)
    timings.update({f"train_part_{k}": v for k, v in train_part.seconds.items()})
    t = time.perf_counter()
    evaluation, holdout = evaluate_served(outer, train_part, trained, tuned, recall_cfg, eval_cfg)
    timings["evaluation"] = time.perf_counter() - t
    evaluation["validation_split"] = {"protocol": str(inner.protocol), **inner.stats}
    evaluation["ranker_rows"] = {
        "train_users": len(train_slates.users),
        "valid_users": len(valid_slates.users),
        "train_rows": len(train_set.y),
        "valid_rows": len(valid_set.y),
    }
    metrics = dict(trained.metrics)
    metrics.update(holdout)
    if "holdout_auc" in metrics:
        check_holdout_auc(metrics["holdout_auc"])
    for key, value in evaluation["end_to_end"].items():
        metrics[f"e2e_{key.replace('@', '_at_')}"] = value
    log.info("training: %s", {k: round(v, 4) for k, v in metrics.items()})
    return TrainingResult(
        trained, train_part.recall, names, train_part.chain.schema_hash, metrics, evaluation,
        valid_set.X[:2000], timings,
    )  # fmt: skip
