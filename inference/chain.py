"""The online chain: history -> recall -> features -> ranker -> diversity, degrading, never failing.

The same steps as ``recsys.recommend.BundleRecommender`` (the offline chain), with the vectors
read from the online store under the bundle's version and the ranker behind the predictor.
Blocking work (store reads, recall channels, feature matrices) runs in one bounded thread pool;
the event loop only awaits. Degradation levels, the highest one reached is reported:

1. the primary store is down, the SQLite fallback answered;
2. no ranker scores (predictor down/slow, or no vectors at all): recall-score order;
3. recall failed or found nothing: the bundle's popular items.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inference import transformer_metrics as metrics
from inference.experiments import Variant
from inference.ranker_client import PredictorError, RankerClient
from recsys.errors import PipelineError, RecsysError
from recsys.features.cross import CrossFeatures
from recsys.ranking.flow import CONTEXT_FEATURES
from recsys.recall.base import RecallContext
from recsys.recall.engine import RecallEngine
from recsys.recall.fusion import Candidate, fuse
from recsys.steps.common import HISTORIES_FILE
from recsys.steps.features import read_features
from recsys.steps.sync import HISTORY_CHANNEL
from recsys.store import FallbackStore, OnlineStore

log = logging.getLogger("kserve.recsys.chain")
CATEGORY = "item_category_code"


class Bundle:
    """What the transformer needs from a bundle: recall engine, feature code, popular list."""

    def __init__(self, path: Path) -> None:
        if not (path / "manifest.json").exists():
            raise PipelineError(f"transformer: {path} is not a complete bundle (no manifest.json)")
        self.path = path
        self.version = str(json.loads((path / "manifest.json").read_text()).get("version") or path.name)
        registry, _, items, _ = read_features(path / "features")
        self.cross = CrossFeatures(registry)
        self.schema_hash = registry.schema_hash
        self.user_columns = registry.vector_columns("user")
        self.item_columns = registry.vector_columns("item")
        self.user_defaults = np.asarray(registry.vector_defaults("user"), dtype=np.float32)
        self.categories = dict(zip(items["item_id"].astype(str), items[CATEGORY].astype(float), strict=True))
        self.recall = RecallEngine.load(path / "recall")
        hist = pd.read_parquet(path / HISTORIES_FILE, columns=None)
        industry = hist["industry"] if "industry" in hist else pd.Series(None, index=hist.index)
        self.industries = {
            str(u): v for u, v in zip(hist["user_id"], industry, strict=True) if isinstance(v, str)
        }
        recall_names, _ = self.recall.candidate_features([])
        ranker = json.loads((path / "ranker" / "ranker.json").read_text())
        self.feature_names = registry.ranker_columns + recall_names + CONTEXT_FEATURES
        if ranker["feature_names"] != self.feature_names or ranker["schema_hash"] != self.schema_hash:
            raise PipelineError(f"transformer: the ranker in {path} was trained on other features")
        self.popular = self._popular()

    def _popular(self) -> list[tuple[str, float]]:
        """The last resort list, computed once: the popular channel for a user with no history."""
        ctx = RecallContext(history=[])
        if "popular" in self.recall.names and self.recall.channel("popular").enabled:
            return self.recall.channel("popular").recall("", ctx, 500)
        return [(c.item_id, c.score) for c in self.recall.recall("", ctx, k=500)]


@dataclass
class Result:
    items: list[str]
    scores: list[float]
    channels: list[str]
    degrade_level: int
    model_version: str
    reasons: list[str] = field(default_factory=list)


@dataclass
class Request:
    user_id: str
    k: int = 10
    scene: str | None = None
    exclude: set[str] = field(default_factory=set)


class Chain:
    def __init__(
        self,
        bundle: Bundle,
        store: OnlineStore,
        rankers: dict[str, RankerClient],
        *,
        threads: int = 8,
        channel_timeout_s: float = 0.1,
        candidates: int = 300,
        category_cap: int = 3,
    ) -> None:
        if "champion" not in rankers:
            raise PipelineError("transformer: no predictor for the champion ranker")
        self.bundle, self.store, self.rankers = bundle, store, rankers
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="recsys-chain")
        self.channel_timeout_s = channel_timeout_s
        self.candidates, self.category_cap = candidates, category_cap
        self.fallback_name = store.fallback.name if isinstance(store, FallbackStore) else None
        names = store.feature_names("item", bundle.version)
        users = store.feature_names("user", bundle.version)
        if names != bundle.item_columns or users != bundle.user_columns:
            raise PipelineError(f"transformer: the store's vectors of {bundle.version} are not the bundle's")
        self.category_col = names.index(CATEGORY)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def recommend(self, req: Request, variant: Variant) -> Result:
        degraded: list[tuple[int, str]] = []
        try:
            return await self._chain(req, variant, degraded)
        except Exception as e:  # noqa: BLE001 - the caller gets popular items, never an error
            log.error("chain failed for user %s: %s", req.user_id, e, exc_info=e)
            degraded.append((3, "error"))
            return self._popular(req, degraded)

    def _finish(self, result: Result, degraded: list[tuple[int, str]]) -> Result:
        for level, reason in dict.fromkeys(degraded):
            metrics.DEGRADED.labels(level=str(level), reason=reason).inc()
        result.degrade_level = max((lvl for lvl, _ in degraded), default=0)
        result.reasons = [r for _, r in degraded]
        return result

    def _popular(self, req: Request, degraded: list[tuple[int, str]]) -> Result:
        pairs = [(i, s) for i, s in self.bundle.popular if i not in req.exclude][: req.k]
        result = Result([i for i, _ in pairs], [float(s) for _, s in pairs], ["popular"] * len(pairs), 3,
                        self.bundle.version)  # fmt: skip
        return self._finish(result, degraded)

    async def _timed(self, stage: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return await self._run(fn, *args)
        finally:
            metrics.STAGE_LATENCY.labels(stage=stage).observe(time.perf_counter() - start)

    async def _chain(self, req: Request, variant: Variant, degraded: list[tuple[int, str]]) -> Result:
        b = self.bundle
        try:
            lists = await self._timed("history", self.store.recall, HISTORY_CHANNEL, [req.user_id], b.version)
            history = [item for item, _ in lists.get(req.user_id, [])]
        except RecsysError as e:
            log.warning("history of %s unavailable: %s", req.user_id, e)
            history = []
        ctx = RecallContext(history=history, user_industry=b.industries.get(req.user_id), scene=req.scene,
                            exclude=set(history) | req.exclude)  # fmt: skip
        start = time.perf_counter()
        cands = await self._recall(req.user_id, ctx, variant)
        metrics.STAGE_LATENCY.labels(stage="recall").observe(time.perf_counter() - start)
        if not cands:
            degraded.append((3, "no_candidates"))
            return self._popular(req, degraded)
        ids = [c.item_id for c in cands]
        try:
            lookup = await self._timed("features", self.store.lookup, req.user_id, ids, b.version)
        except RecsysError as e:
            log.warning("store lookup failed, recall order: %s", e)
            degraded.append((2, "store"))
            cats = np.array([b.categories.get(i, -1.0) for i in ids])
            fused = np.array([c.score for c in cands])
            return self._finish(self._top(req, cands, fused, cats, b.version), degraded)
        if self.fallback_name and lookup.served_by == self.fallback_name:
            degraded.append((1, "store_fallback"))
        keep = np.flatnonzero(lookup.found)
        cands = [cands[i] for i in keep]
        if not cands:
            degraded.append((3, "no_vectors"))
            return self._popular(req, degraded)
        items = lookup.items[keep]
        user = lookup.user if lookup.user is not None else b.user_defaults
        X = await self._timed("matrix", self._matrix, user, items, cands)
        cats = items[:, self.category_col]
        ranker = self.rankers.get(variant.ranker, self.rankers["champion"])
        start = time.perf_counter()
        try:
            scores, version = await ranker.score(X, b.schema_hash)
        except PredictorError as e:
            log.warning("predictor failed, recall order: %s", e)
            degraded.append((2, "predictor"))
            scores, version = np.array([c.score for c in cands]), b.version
        metrics.STAGE_LATENCY.labels(stage="predict").observe(time.perf_counter() - start)
        return self._finish(self._top(req, cands, scores, cats, version), degraded)

    def _matrix(self, user: np.ndarray, items: np.ndarray, cands: list[Candidate]) -> np.ndarray:
        """Exactly the offline order: ranker columns, recall features, position 0."""
        _, recall_x = self.bundle.recall.candidate_features(cands)
        context = np.zeros((len(cands), len(CONTEXT_FEATURES)), np.float32)
        return np.hstack([self.bundle.cross.ranking_matrix(user, items), recall_x, context])

    async def _recall(self, user_id: str, ctx: RecallContext, variant: Variant) -> list[Candidate]:
        engine = self.bundle.recall
        exclude = engine.exclusion.exclude_for(user_id, ctx.exclude)
        ctx = replace(ctx, exclude=exclude)
        channels = [c for c in engine.channels if c.enabled]
        calls = [
            asyncio.wait_for(self._run(c.recall, user_id, ctx, engine.k[c.name]), self.channel_timeout_s)
            for c in channels
        ]
        results: dict[str, Any] = {}
        for channel, out in zip(channels, await asyncio.gather(*calls, return_exceptions=True), strict=True):
            if isinstance(out, TimeoutError):
                metrics.CHANNEL_TIMEOUTS.labels(channel=channel.name).inc()
            elif isinstance(out, BaseException):
                log.warning("recall channel %s failed: %r", channel.name, out)
                metrics.CHANNEL_ERRORS.labels(channel=channel.name).inc()
            else:
                results[channel.name] = engine.exclusion.drop_inactive(out)
        fusion = engine.config.fusion
        weights = {**engine.weights, **variant.recall_weights}
        return fuse(results, weights, self.candidates, exclude, method=fusion.method,
                    rank_offset=fusion.rank_offset)  # fmt: skip

    def _top(self, req: Request, cands: list[Candidate], scores: np.ndarray, cats: np.ndarray,
             version: str) -> Result:  # fmt: skip
        """Best first, at most ``category_cap`` per category; capped ones fill up when short."""
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        picked: list[int] = []
        capped: list[int] = []
        per_cat: dict[float, int] = {}
        for i in order:
            if len(picked) == req.k:
                break
            cat = float(cats[i])
            if per_cat.get(cat, 0) < self.category_cap or np.isnan(cat):
                per_cat[cat] = per_cat.get(cat, 0) + 1
                picked.append(int(i))
            else:
                capped.append(int(i))
        picked += capped[: req.k - len(picked)]
        return Result(
            items=[cands[i].item_id for i in picked],
            scores=[float(scores[i]) for i in picked],
            channels=[",".join(sorted(cands[i].channels)) for i in picked],
            degrade_level=0,
            model_version=version,
        )

    async def close(self) -> None:
        for ranker in self.rankers.values():
            await ranker.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
