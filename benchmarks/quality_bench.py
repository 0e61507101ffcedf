"""Recommendation quality on MovieLens ml-latest-small: recall channels, fusion, recall + LightGBM
ranking, against popularity, item-kNN and EASE baselines, all on one per-user time split.

    .venv/bin/python benchmarks/quality_bench.py [--movielens PATH] [--json [FILE]]

Protocol (docs/BENCHMARKS.md, "Recommendation quality (MovieLens)"):

* positives are clicks (rating >= 4, see ``recsys.data.movielens``). Each user with at least
  ``--min-positives`` (15) positives has their last ``--holdout`` (10) positives held out; their
  *cut* is the time of the first held-out positive, and everything they did after the cut is
  dropped from training (it is their future). Other users stay entirely in training.
* the same split applied to the training part gives the *validation* split: it tunes the
  baselines (EASE lambda, kNN neighbours) and yields the ranker's training labels, so the test
  users' held-out items are never used for any choice.
* every list excludes the items the user rated before the cut (any rating, not only positives).
* the ranker re-orders the fused recall candidates; its features are FeatureEngineV2
  point-in-time features at the user's cut, the recall candidate features (the library's EASE
  channel among them), and a few MovieLens-specific ones built here (the dense EASE baseline's
  score, item rating statistics, release year). The "library features" ablation leaves the
  script's own features out: it is what the library alone achieves.
"""

# ruff: noqa: E402 - the OpenMP setting below must precede the numeric imports
from __future__ import annotations

import os

# LightGBM (its own libgomp) shares the process with scipy's and scikit-learn's OpenMP/OpenBLAS
# pools; with both spinning on 2 cores a 60k-row fit took 15-25 s instead of 1-2 s. Threads that
# sleep when idle fix it; the runtimes read this once, when they load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sl
import scipy.sparse as sp
import yaml

from recsys.data.movielens import load_movielens
from recsys.evaluation.metrics import evaluate_lists, ndcg_at_k
from recsys.evaluation.split import per_user_last_n_split
from recsys.features.engine import FeatureEngineV2
from recsys.features.registry import load_registry
from recsys.ranking.config import RankingConfig
from recsys.ranking.trainer import RankingSet, train_ranker
from recsys.recall.base import RecallContext
from recsys.recall.config import RecallConfig, config_from_dict
from recsys.recall.data import RecallData
from recsys.recall.engine import RecallEngine
from recsys.recall.fusion import Candidate, fuse

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MOVIELENS = REPO.parent / "shared" / "data" / "ml-latest-small"
K = 20
EVAL_KS = (10, 20, 50)
# MovieLens spans 1996-2018; the default half-lives (30-60 days) would weigh a 1996 rating
# at ~0 against the split time, so every channel gets a ten-year half-life here
HALF_LIFE_DAYS = 3650.0
EASE_LAMBDAS = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
# EASE inverts an items x items Gram matrix; items rated fewer times get no EASE score (on the
# validation split, thresholds 1-10 moved NDCG@20 by < 0.001 while the solve got 10x cheaper)
EASE_MIN_RATINGS = 5
KNN_NEIGHBOURS = (20, 50, 100, 200, 0)  # 0 = every co-rated item
CANDIDATES = 300  # fused candidates the ranker re-orders (TrainingConfig.candidates)
HISTORY = 50  # recent positives a recall request sees (TrainingConfig.history_size)
RANKER_NEGATIVES = 50  # negatives sampled per user from the recall candidates
RAW_SCORE_CHANNELS = ("itemcf", "usercf", "embedding")
LIBRARY_ONLY = "recall + FeatureEngineV2 (library features)"  # the ablation without script features
YEAR_FILL = 1995.0  # about the median release year; for titles without a year

log = logging.getLogger("quality_bench")


# --------------------------------------------------------------------------- split


@dataclass
class Split:
    """Training events, the held-out positives per user and each split user's cut time."""

    train: pd.DataFrame
    relevant: dict[str, set[str]]
    cut: pd.Series  # user_id -> Timestamp of the first held-out positive

    @property
    def users(self) -> list[str]:
        return sorted(self.relevant)


def holdout_split(events: pd.DataFrame, n: int, min_positives: int) -> Split:
    clicks = events[events["event_type"] == "click"]
    counts = clicks.groupby("user_id").size()
    eligible = clicks[clicks["user_id"].isin(counts.index[counts >= min_positives])]
    _, test = per_user_last_n_split(eligible, n=n, min_train=min_positives - n)
    cut = test.groupby("user_id")["ts"].min()
    held = pd.MultiIndex.from_frame(test[["user_id", "item_id"]])
    # the held-out pair's view event (same rating) goes too, or the item would count as seen
    is_held = pd.MultiIndex.from_frame(events[["user_id", "item_id"]]).isin(held)
    user_cut = events["user_id"].map(cut)
    after_cut = (user_cut.notna() & (events["ts"] > user_cut)).to_numpy()
    train = events[~is_held & ~after_cut].reset_index(drop=True)
    relevant = {str(u): set(g) for u, g in test.groupby("user_id")["item_id"]}
    return Split(train, relevant, cut)


# --------------------------------------------------------------------------- shared helpers


@dataclass
class Catalogue:
    items: np.ndarray  # sorted item ids, the column order of every matrix here
    weights: dict[str, float]  # event type -> interaction weight (the recall config's)

    def index(self, ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.items, ids)

    def matrix(self, events: pd.DataFrame) -> tuple[sp.csr_matrix, dict[str, int]]:
        """users x items, the summed interaction weights (a liked movie: view + click = 1.5)."""
        w = events["event_type"].map(self.weights).fillna(0.0).to_numpy(np.float64)
        users, rows = np.unique(events["user_id"].to_numpy(dtype=object), return_inverse=True)
        cols = self.index(events["item_id"].to_numpy(dtype=object))
        x = sp.csr_matrix((w, (rows, cols)), shape=(len(users), len(self.items)))
        x.eliminate_zeros()
        return x, {str(u): i for i, u in enumerate(users)}


def seen_items(events: pd.DataFrame) -> dict[str, set[str]]:
    return {str(u): set(g) for u, g in events.groupby("user_id")["item_id"]}


def positive_histories(events: pd.DataFrame, size: int) -> dict[str, list[str]]:
    """Each user's positives, newest first (the order RecallContext.history expects)."""
    pos = events[events["event_type"] == "click"].sort_values(
        ["user_id", "ts", "item_id"], ascending=[True, False, True]
    )
    return {str(u): g.head(size).tolist() for u, g in pos.groupby("user_id")["item_id"]}


def top_lists(
    scores: np.ndarray, users: list[str], cat: Catalogue, seen: dict[str, set[str]], k: int = max(EVAL_KS)
) -> dict[str, list[str]]:
    """Best ``k`` unseen items per user from a dense users x items score matrix (rows = users)."""
    out: dict[str, list[str]] = {}
    for row, user in enumerate(users):
        s = np.array(scores[row], dtype=np.float64)
        s[cat.index(np.array(sorted(seen.get(user, set())), dtype=object))] = -np.inf
        top = np.argpartition(-s, k)[:k]
        top = top[np.lexsort((top, -s[top]))]  # ties by item id, like the recall lists
        out[user] = [str(i) for i in cat.items[top]]
    return out


# --------------------------------------------------------------------------- baselines


def cosine(x: sp.csr_matrix) -> np.ndarray:
    """Dense item-item cosine on the weighted matrix, zero diagonal (float32: 380 MB for 9.7k items)."""
    gram = (x.T @ x).toarray().astype(np.float32)
    norms = np.sqrt(np.diag(gram)).copy()
    norms[norms == 0] = 1.0
    gram /= norms[:, None]
    gram /= norms[None, :]
    np.fill_diagonal(gram, 0.0)
    return gram


def prune(sim: np.ndarray, neighbours: int) -> np.ndarray:
    """Each item's ``neighbours`` most similar items kept (0 = all)."""
    if not 0 < neighbours < sim.shape[1]:
        return sim
    cut = np.partition(sim, -neighbours, axis=1)[:, -neighbours][:, None]
    return np.where(sim >= cut, sim, np.float32(0.0))


class Ease:
    """EASE (Steck 2019): B = I - P diag(1/diag(P)), P = (X^T X + lambda I)^-1, scores X B.

    The Gram matrix is built once; each lambda is one float32 Cholesky inverse over the items
    with at least ``EASE_MIN_RATINGS`` ratings.
    """

    def __init__(self, x: sp.csr_matrix) -> None:
        self.cols = np.flatnonzero(np.diff(x.tocsc().indptr) >= EASE_MIN_RATINGS)
        xk = x[:, self.cols].astype(np.float32)
        self.gram = (xk.T @ xk).toarray()
        self.b: np.ndarray | None = None

    def fit(self, lam: float) -> Ease:
        g = self.gram.copy()
        g[np.diag_indices_from(g)] += lam
        c, info = sl.lapack.spotrf(g, lower=True)
        if info:
            raise RuntimeError(f"EASE: Cholesky failed (info {info})")
        p, info = sl.lapack.spotri(c, lower=True)
        if info:
            raise RuntimeError(f"EASE: inverse failed (info {info})")
        p = np.tril(p) + np.tril(p, -1).T
        b = p / -np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        self.b = b.astype(np.float32)
        return self

    def scores(self, x_rows: sp.csr_matrix) -> np.ndarray:
        """Dense (rows x all items) scores; items outside the model score -inf."""
        assert self.b is not None
        out = np.full((x_rows.shape[0], x_rows.shape[1]), -np.inf, dtype=np.float32)
        out[:, self.cols] = np.asarray(x_rows[:, self.cols].astype(np.float32) @ self.b)
        return out


def user_rows(x: sp.csr_matrix, uidx: dict[str, int], users: list[str]) -> sp.csr_matrix:
    """Rows of ``x`` for ``users`` (an all-zero row for a user without training events)."""
    rows = [uidx.get(u, -1) for u in users]
    pad = sp.vstack([x, sp.csr_matrix((1, x.shape[1]))]).tocsr()
    return pad[[r if r >= 0 else x.shape[0] for r in rows]]


# --------------------------------------------------------------------------- recall


def recall_config(path: Path) -> RecallConfig:
    """config/recall.yaml with every channel's half-life raised to at least ``HALF_LIFE_DAYS``
    (a longer configured one, such as EASE's, is kept)."""
    raw = yaml.safe_load(path.read_text())
    for channel in raw["channels"]:
        params = channel.setdefault("params", {})
        params["half_life_days"] = max(HALF_LIFE_DAYS, float(params.get("half_life_days", 0.0)))
    return config_from_dict(raw, source=f"{path} (half_life_days >= {HALF_LIFE_DAYS:g})")


@dataclass
class Recalled:
    channels: dict[str, dict[str, list[str]]]  # channel -> user -> top items
    candidates: dict[str, list[Candidate]]  # user -> fused candidates


def fit_recall(cfg: RecallConfig, tables: dict[str, pd.DataFrame], train: pd.DataFrame) -> RecallEngine:
    engine = RecallEngine(cfg)
    # one global fit time after the last training event: the per-user split already removed
    # each split user's future, and RecallData drops events after as_of
    as_of = (train["ts"].max() + pd.Timedelta(seconds=1)).to_pydatetime()
    engine.fit_all(RecallData.from_tables({**tables, "events": train}, as_of, cfg.interaction_weights))
    return engine


def run_recall(engine: RecallEngine, users: list[str], train: pd.DataFrame, n: int) -> Recalled:
    hist, seen = positive_histories(train, HISTORY), seen_items(train)
    fusion = engine.config.fusion
    channels: dict[str, dict[str, list[str]]] = {}
    candidates: dict[str, list[Candidate]] = {}
    for user in users:
        ctx = RecallContext(history=hist.get(user, []), exclude=seen.get(user, set()))
        lists = engine.recall_channels(user, ctx)
        for name, items in lists.items():
            channels.setdefault(name, {})[user] = [i for i, _ in items[: max(EVAL_KS)]]
        # what RecallEngine.recall does, without asking every channel a second time
        candidates[user] = fuse(
            lists,
            engine.weights,
            n,
            engine.exclusion.exclude_for(user, ctx.exclude),
            method=fusion.method,
            rank_offset=fusion.rank_offset,
        )
    return Recalled(channels, candidates)


# --------------------------------------------------------------------------- ranker features


@dataclass
class Context:
    """What the ranker features of one split level may know (everything before its cuts)."""

    split: Split
    tables: dict[str, pd.DataFrame]
    cat: Catalogue
    engine: RecallEngine
    recalled: Recalled
    ease_scores: dict[str, np.ndarray]  # user -> EASE scores over cat.items
    item_stats: pd.DataFrame = field(init=False)
    rating_prior: float = field(init=False)
    items: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        # the importer dates an item by its first rating in the whole file, test ratings
        # included; the features get the first *training* rating instead (unrated: the end)
        first = self.split.train.groupby("item_id")["ts"].min()
        items = self.tables["items"].assign(item_id=lambda f: f["item_id"].astype(str))
        end = self.split.train["ts"].max()
        self.items = items.assign(created_at=items["item_id"].map(first).fillna(end).to_numpy())
        views = self.split.train[self.split.train["event_type"] == "view"]
        stats = views.groupby("item_id")["value"].agg(["size", "mean"])
        # shrink the mean rating toward the global mean: 3 ratings of 5.0 are weak evidence
        prior, weight = float(views["value"].mean()), 10.0
        self.rating_prior = prior
        stats["shrunk"] = (stats["mean"] * stats["size"] + prior * weight) / (stats["size"] + weight)
        clicks = self.split.train[self.split.train["event_type"] == "click"].groupby("item_id").size()
        stats["like_rate"] = (clicks.reindex(stats.index, fill_value=0) + 1.0) / (stats["size"] + 2.0)
        self.item_stats = stats.reindex(self.cat.items)


EXTRA_FEATURES = [
    "ease_score",
    "ease_rank",
    *[f"raw_{c}_score" for c in RAW_SCORE_CHANNELS],
    "item_log_ratings",
    "item_mean_rating",
    "item_like_rate",
    "item_year",
    "user_log_ratings",
    "user_mean_rating",
    "user_year_mean",
    "year_gap",
]


def movie_years(items: pd.DataFrame, cat: Catalogue) -> np.ndarray:
    year = pd.to_numeric(items["title"].str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")
    return pd.Series(year.to_numpy(), index=items["item_id"].astype(str)).reindex(cat.items).to_numpy()


def extra_features(
    ctx: Context, user: str, cands: list[Candidate], years: np.ndarray, user_events: pd.DataFrame
) -> np.ndarray:
    idx = ctx.cat.index(np.array([c.item_id for c in cands], dtype=object))
    ease = ctx.ease_scores[user][idx].astype(np.float64)
    ease = np.where(np.isfinite(ease), ease, np.nan)
    order = np.argsort(-np.nan_to_num(ease, nan=-1e9), kind="stable")
    ease_rank = np.empty(len(cands))
    ease_rank[order] = np.arange(len(cands))
    raw = [[c.channels.get(name, (0, np.nan))[1] for c in cands] for name in RAW_SCORE_CHANNELS]
    st = ctx.item_stats.iloc[idx]
    views = user_events[user_events["event_type"] == "view"]
    u_years = years[ctx.cat.index(views["item_id"].to_numpy(dtype=object))]
    u_year = float(np.nanmean(u_years)) if np.isfinite(u_years).any() else np.nan
    n = len(cands)
    # the logistic fallback that train_ranker also fits needs finite inputs: neutral fills
    item_year = np.nan_to_num(years[idx], nan=YEAR_FILL)
    u_year = u_year if np.isfinite(u_year) else YEAR_FILL
    cols = [
        np.nan_to_num(ease, nan=0.0),
        1.0 / (ease_rank + 1.0),
        *[np.nan_to_num(np.asarray(r, dtype=np.float64), nan=0.0) for r in raw],
        np.log1p(st["size"].fillna(0).to_numpy()),
        st["shrunk"].fillna(ctx.rating_prior).to_numpy(),
        st["like_rate"].fillna(0.5).to_numpy(),
        item_year,
        np.full(n, math.log1p(len(views))),
        np.full(n, float(views["value"].mean()) if len(views) else ctx.rating_prior),
        np.full(n, u_year),
        item_year - u_year,
    ]
    return np.column_stack(cols).astype(np.float32)


def ranking_rows(
    ctx: Context,
    users: list[str],
    feature_engine: FeatureEngineV2,
    years: np.ndarray,
    labels: bool,
    negatives: int,
    seed: int,
) -> tuple[RankingSet, list[list[Candidate]], list[str]]:
    """One slate per user: its recall candidates (training: the positives among them plus
    ``negatives`` sampled others), with FeatureEngineV2 features at the user's cut."""
    rng = np.random.default_rng(seed)
    train = ctx.split.train.sort_values("ts", kind="stable")
    train_ts = train["ts"].to_numpy()
    by_user = {str(u): g for u, g in train.groupby("user_id")}
    users_table = ctx.tables["users"]
    blocks, ys, sizes, slates, kept_users = [], [], [], [], []
    for user in users:
        cands = ctx.recalled.candidates.get(user, [])
        rel = ctx.split.relevant[user]
        y = np.array([c.item_id in rel for c in cands], dtype=np.float32)
        if not cands or (labels and not y.any()):
            continue  # nothing to rank, or (training) nothing to learn from
        cut = ctx.split.cut[user]
        # the features see what happened strictly before the cut; FeatureEngineV2 itself only
        # reads the last 90 days, the slice just spares it the filtering
        lo, hi = np.searchsorted(train_ts, [np.datetime64(cut - pd.Timedelta(days=91)), np.datetime64(cut)])
        window = train.iloc[lo:hi]
        # hashing every item's tags is half of a compute() call, and only the candidates' tags
        # (item_tag_buckets) and those of the user's recent clicks (user_tag_pref) reach these
        # rows: blanking the others leaves every value of the rows unchanged
        needed = {c.item_id for c in cands} | set(window.loc[window["user_id"] == user, "item_id"])
        items = ctx.items.assign(tags=ctx.items["tags"].where(ctx.items["item_id"].isin(needed)))
        with warnings.catch_warnings():
            # MovieLens has no prices: the price medians of FeatureEngineV2 warn on all-NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            frames = feature_engine.compute(
                {"users": users_table[users_table["user_id"] == user], "items": items, "events": window},
                cut.to_pydatetime(),
                snapshots=1,
            )
        rows = pd.DataFrame({"user_id": user, "item_id": [c.item_id for c in cands], "ts": cut})
        x_fe, _ = feature_engine.point_in_time_matrix(frames, rows)
        _, x_recall = ctx.engine.candidate_features(cands)
        # slate-relative features (EASE rank) are computed over the whole slate, as when serving,
        # before the training slate is cut down to its positives and sampled negatives
        x_extra = extra_features(ctx, user, cands, years, by_user.get(user, train.iloc[:0]))
        x = np.hstack([x_fe, x_recall, x_extra])
        if labels:
            pos, neg = np.flatnonzero(y), np.flatnonzero(y == 0)
            neg = rng.choice(neg, size=min(negatives, len(neg)), replace=False)
            keep = np.sort(np.concatenate([pos, neg]))
            cands, y, x = [cands[i] for i in keep], y[keep], x[keep]
        blocks.append(x)
        ys.append(y)
        sizes.append(len(cands))
        slates.append(cands)
        kept_users.append(user)
    return RankingSet(np.vstack(blocks), np.concatenate(ys), np.array(sizes)), slates, kept_users


def subset(rs: RankingSet, take: np.ndarray) -> RankingSet:
    """The slates ``take`` (a boolean mask over slates) of a ranking set."""
    starts = np.concatenate([[0], np.cumsum(rs.groups)[:-1]])
    rows = np.concatenate([np.arange(s, s + n) for s, n, t in zip(starts, rs.groups, take, strict=True) if t])
    return RankingSet(rs.X[rows], rs.y[rows], rs.groups[take])


# --------------------------------------------------------------------------- the run


@dataclass
class Result:
    name: str
    kind: str  # baseline | reference | channel | fused | end_to_end | ablation
    metrics: dict[str, float]
    seconds: float
    note: str = ""
    lists: dict[str, list[str]] = field(default_factory=dict, repr=False)


class Bench:
    """The data, both splits and the pieces the methods share; one method per table row."""

    def __init__(self, movielens: Path, args: argparse.Namespace) -> None:
        self.args = args
        tables = load_movielens(movielens)
        events = tables["events"].assign(
            user_id=lambda f: f["user_id"].astype(str),
            item_id=lambda f: f["item_id"].astype(str),
            ts=lambda f: pd.to_datetime(f["ts"]),
        )
        self.tables = {**tables, "users": tables["users"].assign(user_id=lambda f: f["user_id"].astype(str))}
        self.test = holdout_split(events, args.holdout, args.min_positives)
        self.valid = holdout_split(self.test.train, args.holdout, args.min_positives)
        self.cfg = recall_config(REPO / "config" / "recall.yaml")
        items = np.array(sorted(self.tables["items"]["item_id"].astype(str)), dtype=object)
        self.cat = Catalogue(items, self.cfg.interaction_weights)
        self.results: list[Result] = []
        self.tuning: dict[str, Any] = {}
        log.info(
            "split: %d test users, %d validation users", len(self.test.relevant), len(self.valid.relevant)
        )

    def add(self, name: str, kind: str, lists: dict[str, list[str]], seconds: float, note: str = "") -> None:
        m = evaluate_lists(lists, self.test.relevant, EVAL_KS, len(self.cat.items))
        self.results.append(Result(name, kind, m, seconds, note, lists))
        log.info("%-26s Recall@20 %.4f NDCG@20 %.4f (%.1fs)", name, m["recall@20"], m["ndcg@20"], seconds)

    def valid_ndcg(self, lists: dict[str, list[str]]) -> float:
        return evaluate_lists(lists, self.valid.relevant, (K,))[f"ndcg@{K}"]

    def scored_lists(
        self, split: Split, scores: Callable[[sp.csr_matrix], np.ndarray]
    ) -> dict[str, list[str]]:
        x, uidx = self.cat.matrix(split.train)
        return top_lists(
            scores(user_rows(x, uidx, split.users)), split.users, self.cat, seen_items(split.train)
        )

    def popularity(self) -> None:
        start = time.perf_counter()
        pop = np.asarray(self.cat.matrix(self.test.train)[0].sum(axis=0)).ravel()
        lists = self.scored_lists(self.test, lambda rows: np.broadcast_to(pop, (rows.shape[0], len(pop))))
        self.add("popularity", "baseline", lists, time.perf_counter() - start, "weighted interactions")

    def knn(self) -> None:
        start = time.perf_counter()
        sim = cosine(self.cat.matrix(self.valid.train)[0])
        tuned = {
            n: self.valid_ndcg(
                self.scored_lists(self.valid, lambda rows, n=n: np.asarray(rows @ prune(sim, n)))
            )
            for n in KNN_NEIGHBOURS
        }
        best = max(tuned, key=lambda n: tuned[n])
        self.tuning["knn_valid_ndcg20"] = {str(n): round(v, 4) for n, v in tuned.items()}
        sim = prune(cosine(self.cat.matrix(self.test.train)[0]), best)
        lists = self.scored_lists(self.test, lambda rows: np.asarray(rows @ sim))
        self.add(
            "item-kNN (cosine)",
            "baseline",
            lists,
            time.perf_counter() - start,
            f"neighbours={best or 'all'} (validation)",
        )

    def ease(self) -> None:
        """EASE with lambda tuned on the validation split; keeps both fitted models, whose
        scores the ranker uses (validation model for its training rows, test model to serve)."""
        start = time.perf_counter()
        xv, uv = self.cat.matrix(self.valid.train)
        model = Ease(xv)
        rows_v = user_rows(xv, uv, self.valid.users)
        seen_v = seen_items(self.valid.train)
        tuned = {
            lam: self.valid_ndcg(top_lists(model.fit(lam).scores(rows_v), self.valid.users, self.cat, seen_v))
            for lam in EASE_LAMBDAS
        }
        self.lam = max(tuned, key=lambda lam: tuned[lam])
        self.tuning["ease_valid_ndcg20"] = {f"{k:g}": round(v, 4) for k, v in tuned.items()}
        self.ease_valid = model.fit(self.lam).scores(rows_v)
        xt, ut = self.cat.matrix(self.test.train)
        model_t = Ease(xt).fit(self.lam)
        self.ease_test = model_t.scores(user_rows(xt, ut, self.test.users))
        self.ease_seconds = time.perf_counter() - start  # the ranker's EASE features cost this too
        seen_t = seen_items(self.test.train)
        self.add(
            "EASE",
            "baseline",
            top_lists(self.ease_test, self.test.users, self.cat, seen_t),
            time.perf_counter() - start,
            f"lambda={self.lam:g} (validation), {len(model_t.cols)} items",
        )
        # a check, not a baseline: does hiding movies nobody had rated before the user's cut
        # (not yet released, as far as the data knows) explain the ranker's time features?
        first = self.test.train.groupby("item_id")["ts"].min().reindex(self.cat.items).to_numpy()
        hidden = self.ease_test.copy()
        for row, user in enumerate(self.test.users):
            hidden[row, ~(first <= np.datetime64(self.test.cut[user]))] = -np.inf
        self.add(
            "EASE, items rated before cut",
            "reference",
            top_lists(hidden, self.test.users, self.cat, seen_t),
            0.0,
            "check: released-before-cut filter",
        )

    def recall(self) -> None:
        start = time.perf_counter()
        self.engine = fit_recall(self.cfg, self.tables, self.test.train)
        fitted = time.perf_counter()
        self.recalled = run_recall(self.engine, self.test.users, self.test.train, CANDIDATES)
        self.recall_seconds = time.perf_counter() - start
        queried = (time.perf_counter() - fitted) / max(len(self.test.users), 1)
        for name, lists in self.recalled.channels.items():
            self.add(
                f"recall: {name}",
                "channel",
                lists,
                self.engine.fit_seconds[name],
                f"fit time; queries {queried * 1000:.0f} ms/user for all channels",
            )
        self.tuning["disabled_channels"] = {
            c.name: c.disabled_reason for c in self.engine.channels if not c.enabled
        }
        fused = {u: [c.item_id for c in cands] for u, cands in self.recalled.candidates.items()}
        deep = evaluate_lists(fused, self.test.relevant, (CANDIDATES,))[f"recall@{CANDIDATES}"]
        self.tuning[f"fused_recall@{CANDIDATES}"] = round(deep, 4)
        self.add(
            "recall: fused",
            "fused",
            {u: v[: max(EVAL_KS)] for u, v in fused.items()},
            self.recall_seconds,
            f"{self.cfg.fusion.method}; Recall@{CANDIDATES} {deep:.3f}",
        )

    def ranker(self) -> None:
        start = time.perf_counter()
        registry = load_registry(REPO / "config" / "features.yaml")
        feature_engine = FeatureEngineV2(registry)
        years = movie_years(self.tables["items"], self.cat)
        # training rows: channels fitted on the validation split's training part, labels = its
        # held-out positives (never the test users' held-out items)
        early = fit_recall(self.cfg, self.tables, self.valid.train)
        early_recalled = run_recall(early, self.valid.users, self.valid.train, CANDIDATES)
        fit_ctx = Context(
            self.valid,
            self.tables,
            self.cat,
            early,
            early_recalled,
            dict(zip(self.valid.users, self.ease_valid, strict=True)),
        )
        rows, _, fit_users = ranking_rows(
            fit_ctx, self.valid.users, feature_engine, years, True, self.args.negatives, seed=1
        )
        rows_seconds = time.perf_counter() - start
        start = time.perf_counter()
        serve_ctx = Context(
            self.test,
            self.tables,
            self.cat,
            self.engine,
            self.recalled,
            dict(zip(self.test.users, self.ease_test, strict=True)),
        )
        slates_x, slates, users = ranking_rows(serve_ctx, self.test.users, feature_engine, years, False, 0, 2)
        serve_rows_seconds = time.perf_counter() - start

        names = [*registry.ranker_columns, *self.engine.candidate_features([])[0], *EXTRA_FEATURES]
        n_fe, n_recall = len(registry.ranker_columns), len(self.engine.candidate_features([])[0])
        groups = {
            "FeatureEngineV2": list(range(n_fe)),
            "recall": list(range(n_fe, n_fe + n_recall)),
            "EASE": [names.index("ease_score"), names.index("ease_rank")],
            "MovieLens": [names.index(n) for n in EXTRA_FEATURES if not n.startswith("ease_")],
        }
        # a fifth of the users stop the boosting and pick the objective (binary vs lambdarank)
        held = np.random.default_rng(7).random(len(fit_users)) < 0.2
        cfg = RankingConfig(n_estimators=self.args.trees, min_child_samples=20, early_stopping_rounds=50)
        ends = np.cumsum(slates_x.groups)

        def rank_with(cols: list[int]) -> tuple[dict[str, list[str]], Any]:
            part = RankingSet(rows.X[:, cols], rows.y, rows.groups)
            trained = train_ranker(subset(part, ~held), subset(part, held), [names[c] for c in cols], cfg)
            scores = trained.booster.predict(slates_x.X[:, cols])
            ranked = {
                user: [cands[i].item_id for i in np.argsort(-scores[end - len(cands) : end], kind="stable")]
                for user, cands, end in zip(users, slates, ends, strict=True)
            }
            return {u: v[: max(EVAL_KS)] for u, v in ranked.items()}, trained

        start = time.perf_counter()
        lists, trained = rank_with(list(range(len(names))))
        fit_seconds = time.perf_counter() - start
        self.add(
            "recall + LightGBM ranker",
            "end_to_end",
            lists,
            self.ease_seconds + self.recall_seconds + rows_seconds + serve_rows_seconds + fit_seconds,
            f"{trained.objective}, {int(trained.metrics['trees'])} trees, {len(names)} features",
        )
        gain = trained.booster.feature_importance("gain")
        top = np.argsort(-gain)[:20]
        self.tuning["ranker"] = {
            "objective": trained.objective,
            "fit_users": int((~held).sum()),
            "early_stopping_users": int(held.sum()),
            "train_rows": int(trained.metrics["train_rows"]),
            "seconds": {
                "training_rows": round(rows_seconds, 1),
                "test_rows": round(serve_rows_seconds, 1),
                "fit_and_score": round(fit_seconds, 1),
            },
            "metrics": {k: round(v, 4) for k, v in trained.metrics.items()},
            "importance_gain": {names[i]: round(float(gain[i] / gain.sum()), 4) for i in top},
        }
        # which feature groups carry the gain: the same rows, one ranker per subset
        ablations = {
            "recall features only": groups["recall"],
            LIBRARY_ONLY: groups["recall"] + groups["FeatureEngineV2"],
            "recall + EASE": groups["recall"] + groups["EASE"],
            "all but FeatureEngineV2": groups["recall"] + groups["EASE"] + groups["MovieLens"],
            "all but EASE": groups["recall"] + groups["FeatureEngineV2"] + groups["MovieLens"],
        }
        for label, cols in ablations.items():
            start = time.perf_counter()
            lists, _ = rank_with(sorted(cols))
            self.add(
                f"ranker: {label}", "ablation", lists, time.perf_counter() - start, f"{len(cols)} features"
            )


def run(movielens: Path, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    bench = Bench(movielens, args)
    bench.popularity()
    bench.knn()
    bench.ease()
    bench.recall()
    bench.ranker()
    baselines = [r for r in bench.results if r.kind == "baseline"]
    best = max(baselines, key=lambda r: r.metrics[f"ndcg@{K}"])
    end_to_end = next(r for r in bench.results if r.kind == "end_to_end")
    e2e, base = end_to_end.metrics[f"ndcg@{K}"], best.metrics[f"ndcg@{K}"]
    # the same ranker on what the library ships alone (recall channels + FeatureEngineV2)
    library = next(r for r in bench.results if r.name == f"ranker: {LIBRARY_ONLY}").metrics[f"ndcg@{K}"]
    # per-user paired differences: the lift's uncertainty over these 500-odd users
    diff = np.array(
        [
            ndcg_at_k(end_to_end.lists.get(u, []), rel, K) - ndcg_at_k(best.lists.get(u, []), rel, K)
            for u, rel in bench.test.relevant.items()
        ]
    )
    half_width = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff))
    return {
        "dataset": str(movielens),
        "protocol": {
            "positive": "click (rating >= 4)",
            "holdout_positives": args.holdout,
            "min_positives": args.min_positives,
            "test_users": len(bench.test.relevant),
            "validation_users": len(bench.valid.relevant),
            "items": len(bench.cat.items),
            "half_life_days": HALF_LIFE_DAYS,
            "candidates": CANDIDATES,
            "ranker_negatives": args.negatives,
        },
        "results": [
            {
                "method": r.name,
                "kind": r.kind,
                "seconds": round(r.seconds, 2),
                "note": r.note,
                **{k: round(v, 5) for k, v in r.metrics.items()},
            }
            for r in bench.results
        ],
        "tuning": bench.tuning,
        "target": {
            "best_baseline": best.name,
            "best_baseline_ndcg20": round(base, 5),
            "end_to_end_ndcg20": round(e2e, 5),
            "lift": round(e2e / base - 1.0, 4),
            "lift_95ci": [
                round((e2e - half_width) / base - 1.0, 4),
                round((e2e + half_width) / base - 1.0, 4),
            ],
            "users_better": int((diff > 0).sum()),
            "users_worse": int((diff < 0).sum()),
            "met": e2e >= 1.05 * base,
            "library_only_ndcg20": round(library, 5),
            "library_only_lift": round(library / base - 1.0, 4),
            "library_only_met": library >= 1.05 * base,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


def print_table(summary: dict[str, Any]) -> None:
    print(f"{'method':<46} {'Recall@20':>9} {'NDCG@20':>8} {'time s':>7}  note")
    for kind in ("baseline", "reference", "channel", "fused", "end_to_end", "ablation"):
        for r in (r for r in summary["results"] if r["kind"] == kind):
            scores = f"{r['recall@20']:>9.4f} {r['ndcg@20']:>8.4f}"
            print(f"{r['method']:<46} {scores} {r['seconds']:>7.1f}  {r['note']}")
    t = summary["target"]
    lo, hi = t["lift_95ci"]
    print(
        f"end-to-end NDCG@20 {t['end_to_end_ndcg20']:.4f} vs best baseline {t['best_baseline']} "
        f"{t['best_baseline_ndcg20']:.4f}: {t['lift']:+.1%} (95% CI {lo:+.1%} .. {hi:+.1%}; "
        f"{t['users_better']} users better, {t['users_worse']} worse); "
        f"target +5%: {'met' if t['met'] else 'NOT met'}; total {summary['seconds']}s"
    )
    print(
        f"library only ({LIBRARY_ONLY}): NDCG@20 {t['library_only_ndcg20']:.4f}, "
        f"{t['library_only_lift']:+.1%}; target +5%: {'met' if t['library_only_met'] else 'NOT met'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--movielens", type=Path, default=DEFAULT_MOVIELENS, help="ml-latest-small directory")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="write the results as JSON to FILE (stdout without FILE)",
    )
    parser.add_argument("--holdout", type=int, default=10, help="held-out positives per user")
    parser.add_argument("--min-positives", type=int, default=15, help="fewer positives: training only")
    parser.add_argument("--negatives", type=int, default=RANKER_NEGATIVES, help="ranker negatives per user")
    parser.add_argument("--trees", type=int, default=500, help="boosting rounds (early stopping applies)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("recsys").setLevel(logging.WARNING)
    if not (args.movielens / "ratings.csv").exists():
        parser.error(f"{args.movielens} does not hold ml-latest-small (ratings.csv)")
    summary = run(args.movielens, args)
    print_table(summary)
    if args.json == "-":
        print(json.dumps(summary, indent=1))
    elif args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
