"""Train recall + ranking on a time split and evaluate them end to end.

Time layout (``as_of`` = run time)::

    ... train rows ... | valid rows | holdout (evaluation)        |
                       ^ split - valid_days        ^ split = as_of - holdout_days      ^ as_of

Ranker rows come from the training window with point-in-time features; their recall features
come from channels fitted on data before the training window (a recall engine that had seen a
row's click would hand the ranker its label). The validation rows pick the objective and stop
boosting. The holdout is scored with channels and features fitted at ``split``, as serving
would see them, and measures the ranker (AUC/logloss) and the whole recall + rank chain
(Recall/NDCG/HitRate@K per channel and end to end) against a popularity baseline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from recsys.evaluation.metrics import evaluate_lists, evaluate_scores
from recsys.features.engine import FeatureEngineV2, FeatureFrames
from recsys.features.registry import FeatureRegistry
from recsys.ranking.config import RankingConfig, TrainingConfig
from recsys.ranking.dataset import POSITIVE, impression_rows, sampled_rows, slate_sizes
from recsys.ranking.trainer import RankingSet, TrainedRanker, train_ranker
from recsys.recall.base import RecallContext, RecallData
from recsys.recall.config import RecallConfig
from recsys.recall.engine import RecallEngine
from recsys.recall.fusion import Candidate

log = logging.getLogger(__name__)
CONTEXT_FEATURES = ["position"]  # known in logs, set to 0 when serving (position debiasing)


@dataclass
class TrainingResult:
    ranker: TrainedRanker
    feature_names: list[str]
    recall: RecallEngine
    metrics: dict[str, float]
    evaluation: dict[str, Any]
    parity_rows: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def histories(events: pd.DataFrame, before: datetime, size: int) -> dict[str, list[str]]:
    """Each user's most recent distinct positive items before ``before``, newest first."""
    ts = pd.to_datetime(events["ts"])
    pos = events[events["event_type"].isin(POSITIVE) & (ts < pd.Timestamp(before))]
    pos = pos.assign(ts=pd.to_datetime(pos["ts"])).sort_values("ts", ascending=False)
    pos = pos.drop_duplicates(["user_id", "item_id"])
    grouped = pos.groupby("user_id", sort=False)["item_id"].agg(lambda s: [str(i) for i in s.head(size)])
    return {str(u): items for u, items in grouped.items()}


def _contexts(users: pd.DataFrame) -> dict[str, str | None]:
    industry = users.set_index(users["user_id"].astype(str))["industry"]
    return {u: (v if isinstance(v, str) else None) for u, v in industry.items()}


def recall_candidates(
    engine: RecallEngine,
    user_ids: list[str],
    hist: dict[str, list[str]],
    industries: dict[str, str | None],
    k: int,
    exclude_history: bool = False,
) -> dict[str, list[Candidate]]:
    out = {}
    for user in user_ids:
        past = hist.get(user, [])
        ctx = RecallContext(
            history=past, user_industry=industries.get(user), exclude=set(past) if exclude_history else set()
        )
        out[user] = engine.recall(user, ctx, k=k)
    return out


def recall_feature_rows(
    rows: pd.DataFrame, cands: dict[str, list[Candidate]], engine: RecallEngine
) -> np.ndarray:
    """Per (user, item) row: the candidate's recall features, zeros when recall missed it."""
    names, _ = engine.candidate_features([])
    out = np.zeros((len(rows), len(names)), dtype=np.float32)
    lookup: dict[tuple[str, str], int] = {}
    blocks: dict[str, np.ndarray] = {}
    for user, items in cands.items():
        _, matrix = engine.candidate_features(items)
        blocks[user] = matrix
        for i, c in enumerate(items):
            lookup[(user, c.item_id)] = i
    for r, (user, item) in enumerate(zip(rows["user_id"], rows["item_id"], strict=True)):
        i = lookup.get((user, item))
        if i is not None:
            out[r] = blocks[user][i]
    return out


def _ranking_set(
    rows: pd.DataFrame, engine: FeatureEngineV2, frames: FeatureFrames, recall_x: np.ndarray
) -> RankingSet:
    X, kept = engine.point_in_time_matrix(frames, rows)
    if not kept.all():
        raise ValueError("ranking rows outside the feature snapshots")
    ctx = rows[CONTEXT_FEATURES].to_numpy(dtype=np.float32)
    return RankingSet(np.hstack([X, recall_x, ctx]), rows["label"].to_numpy(np.float32), slate_sizes(rows))


def train_and_evaluate(
    tables: dict[str, pd.DataFrame],
    as_of: datetime,
    registry: FeatureRegistry,
    recall_cfg: RecallConfig,
    ranking_cfg: RankingConfig,
    cfg: TrainingConfig,
) -> TrainingResult:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    split = as_of - timedelta(days=cfg.holdout_days)
    valid_start = split - timedelta(days=cfg.valid_days)
    train_start = valid_start - timedelta(days=cfg.train_days)
    events = tables["events"].assign(
        user_id=lambda f: f["user_id"].astype(str), item_id=lambda f: f["item_id"].astype(str)
    )

    recall = RecallEngine(recall_cfg)
    recall.fit_all(
        RecallData.from_tables({**tables, "events": events}, split, recall_cfg.interaction_weights)
    )
    early = RecallEngine(recall_cfg)  # what the ranker's training rows may know
    early.fit_all(
        RecallData.from_tables({**tables, "events": events}, train_start, recall_cfg.interaction_weights)
    )
    timings["recall_fit"] = time.perf_counter() - t0

    t = time.perf_counter()
    feature_engine = FeatureEngineV2(registry)
    snapshots = int(np.ceil((split - train_start).total_seconds() / 86400)) + 1
    frames = feature_engine.compute(tables, split, snapshots=snapshots)
    timings["features"] = time.perf_counter() - t

    t = time.perf_counter()
    has_impressions = (events["event_type"] == "impression").any()
    if has_impressions:
        train_rows = impression_rows(events, train_start, valid_start)
        valid_rows = impression_rows(events, valid_start, split)
        hold_rows = impression_rows(events, split, as_of)
    else:
        pop = events[events["event_type"].isin(POSITIVE)]["item_id"].value_counts()
        ids, weights = pop.index.to_numpy(dtype=object), pop.to_numpy(dtype=np.float64)
        train_rows = sampled_rows(events, train_start, valid_start, ids, weights, cfg.negatives, cfg.seed)
        valid_rows = sampled_rows(events, valid_start, split, ids, weights, cfg.negatives, cfg.seed + 1)
        hold_rows = sampled_rows(events, split, as_of, ids, weights, cfg.negatives, cfg.seed + 2)
    hist = histories(events, split, cfg.history_size)
    early_hist = histories(events, train_start, cfg.history_size)
    industries = _contexts(tables["users"])
    fit_users = sorted(set(train_rows["user_id"]) | set(valid_rows["user_id"]))
    early_cands = recall_candidates(early, fit_users, early_hist, industries, cfg.candidates)
    cands = recall_candidates(recall, sorted(set(hold_rows["user_id"])), hist, industries, cfg.candidates)
    timings["recall_candidates"] = time.perf_counter() - t

    t = time.perf_counter()
    recall_names, _ = recall.candidate_features([])
    names = registry.ranker_columns + recall_names + CONTEXT_FEATURES
    train_set = _ranking_set(
        train_rows, feature_engine, frames, recall_feature_rows(train_rows, early_cands, early)
    )
    valid_set = _ranking_set(
        valid_rows, feature_engine, frames, recall_feature_rows(valid_rows, early_cands, early)
    )
    # holdout rows are after the split: they use the snapshot at the split, like serving would
    hold_at_split = hold_rows.assign(ts=pd.Timestamp(split))
    hold_set = _ranking_set(
        hold_at_split, feature_engine, frames, recall_feature_rows(hold_rows, cands, recall)
    )
    timings["rows"] = time.perf_counter() - t

    t = time.perf_counter()
    trained = train_ranker(train_set, valid_set, names, ranking_cfg)
    timings["ranker_fit"] = time.perf_counter() - t
    hold_scores = trained.booster.predict(hold_set.X)
    probs = hold_scores if trained.objective == "binary" else 1.0 / (1.0 + np.exp(-hold_scores))
    metrics = dict(trained.metrics)
    metrics.update({f"holdout_{k}": v for k, v in evaluate_scores(hold_set.y, probs).items()})
    metrics["holdout_auc_logistic"] = evaluate_scores(hold_set.y, trained.logistic.predict(hold_set.X))["auc"]

    t = time.perf_counter()
    evaluation = evaluate_chain(
        events, split, as_of, recall, trained, feature_engine, frames, hist, industries, cfg
    )
    timings["evaluation"] = time.perf_counter() - t
    for key, value in evaluation["end_to_end"].items():
        metrics[f"e2e_{key.replace('@', '_at_')}"] = value
    log.info("training: %s", {k: round(v, 4) for k, v in metrics.items()})
    return TrainingResult(trained, names, recall, metrics, evaluation, valid_set.X[:2000], timings)


def evaluate_chain(
    events: pd.DataFrame,
    split: datetime,
    as_of: datetime,
    recall: RecallEngine,
    trained: TrainedRanker,
    feature_engine: FeatureEngineV2,
    frames: FeatureFrames,
    hist: dict[str, list[str]],
    industries: dict[str, str | None],
    cfg: TrainingConfig,
) -> dict[str, Any]:
    """Per-channel, fused and ranked top-K against each user's new positives in the holdout."""
    ts = pd.to_datetime(events["ts"])
    hold = events[
        events["event_type"].isin(POSITIVE) & (ts >= pd.Timestamp(split)) & (ts < pd.Timestamp(as_of))
    ]
    relevant: dict[str, set[str]] = {}
    for user, item in zip(hold["user_id"], hold["item_id"], strict=True):
        if item not in set(hist.get(user, [])):
            relevant.setdefault(user, set()).add(item)
    users = sorted(relevant)
    if len(users) > cfg.eval_max_users:
        users = sorted(np.random.default_rng(cfg.seed).choice(users, cfg.eval_max_users, replace=False))
    relevant = {u: relevant[u] for u in users}
    kmax = max(cfg.eval_k)
    per_channel: dict[str, dict[str, list[str]]] = {name: {} for name in recall.names}
    fused: dict[str, list[str]] = {}
    ranked: dict[str, list[str]] = {}
    recall_names, _ = recall.candidate_features([])
    for user in users:
        past = hist.get(user, [])
        ctx = RecallContext(history=past, user_industry=industries.get(user), exclude=set(past))
        lists = recall.recall_channels(user, ctx)
        for name, items in lists.items():
            per_channel[name][user] = [i for i, _ in items[:kmax]]
        cands = recall.recall(user, ctx, k=cfg.candidates)
        fused[user] = [c.item_id for c in cands[:kmax]]
        if not cands:
            ranked[user] = []
            continue
        rows = pd.DataFrame(
            {"user_id": user, "item_id": [c.item_id for c in cands], "ts": pd.Timestamp(split)}
        )
        X, _ = feature_engine.point_in_time_matrix(frames, rows)
        _, rx = recall.candidate_features(cands)
        scores = trained.booster.predict(np.hstack([X, rx, np.zeros((len(cands), 1), np.float32)]))
        order = np.argsort(-scores, kind="stable")[:kmax]
        ranked[user] = [cands[i].item_id for i in order]
    catalogue = int(frames.items["item_id"].nunique())
    popular = events[events["event_type"].isin(POSITIVE) & (ts < pd.Timestamp(split))][
        "item_id"
    ].value_counts()
    top = [str(i) for i in popular.index[: kmax + cfg.history_size]]
    baseline = {u: [i for i in top if i not in set(hist.get(u, []))][:kmax] for u in users}
    ks = tuple(cfg.eval_k)
    return {
        "users": len(users),
        "split": split.isoformat(),
        "channels": {n: evaluate_lists(r, relevant, ks, catalogue) for n, r in per_channel.items() if r},
        "fused": evaluate_lists(fused, relevant, ks, catalogue),
        "end_to_end": evaluate_lists(ranked, relevant, ks, catalogue),
        "baseline_popular": evaluate_lists(baseline, relevant, ks, catalogue),
    }
