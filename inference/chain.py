"""The online chain: history -> recall -> features -> ranker -> diversity, degrading, never failing.

The same steps as ``recsys.recommend.BundleRecommender`` (the offline chain), with the vectors
read from the online store under the bundle's version and the ranker behind the predictor.
Blocking work (store reads, recall channels, feature matrices) runs in one bounded thread pool;
the event loop only awaits. Every stage has a timeout (``Timeouts``; counted in
``recommendation_timeouts_total{stage}``) and the whole request has one too. Degradation
levels, the highest one reached is reported:

1. the primary store is down (or its circuit is open), the SQLite fallback answered;
2. no ranker scores (predictor down, slow or its circuit open; no vectors): recall-score order;
3. recall failed or found nothing, or the request ran out of time: the bundle's popular items.

A request reads ``self.bundle`` once and uses that snapshot throughout, so ``swap`` (a reload
after a new champion) never mixes two bundles in one answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inference import transformer_metrics as metrics
from inference.experiments import Variant
from inference.ranker_client import CircuitOpen, PredictorError, PredictorTimeout, RankerClient
from inference.shadow import ShadowMirror
from recsys.errors import PipelineError, RecsysError, StoreUnavailable
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
        self.category_col = -1

    def bind(self, store: OnlineStore) -> Bundle:
        """Check that the store holds this bundle's vectors; remember where the category is."""
        items = store.feature_names("item", self.version)
        users = store.feature_names("user", self.version)
        if items != self.item_columns or users != self.user_columns:
            raise PipelineError(f"transformer: the store's vectors of {self.version} are not the bundle's")
        self.category_col = items.index(CATEGORY)
        return self

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


@dataclass(frozen=True)
class Timeouts:
    """Seconds each stage may take; ``request`` bounds the whole chain."""

    store: float = 0.05
    channel: float = 0.05
    request: float = 0.25


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
        timeouts: Timeouts = Timeouts(),
        candidates: int = 300,
        category_cap: int = 3,
        shadow: ShadowMirror | None = None,
    ) -> None:
        if "champion" not in rankers:
            raise PipelineError("transformer: no predictor for the champion ranker")
        self.store, self.rankers, self.shadow = store, rankers, shadow
        self.bundle = bundle.bind(store)
        # two pools: a recall job waits for its channels, so they must not queue behind it
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="recsys-chain")
        self.recall_pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="recsys-recall")
        metrics.POOL_QUEUE.labels(pool="chain").set_function(self.pool._work_queue.qsize)
        metrics.POOL_QUEUE.labels(pool="recall").set_function(self.recall_pool._work_queue.qsize)
        self.timeouts = timeouts
        self.candidates, self.category_cap = candidates, category_cap
        self.fallback_name = store.fallback.name if isinstance(store, FallbackStore) else None

    def swap(self, bundle: Bundle) -> None:
        """Serve ``bundle`` from the next request on (it must be bound to this chain's store)."""
        self.bundle = bundle

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def recommend(self, req: Request, variant: Variant) -> Result:
        degraded: list[tuple[int, str]] = []
        b = self.bundle  # this request's snapshot
        try:
            return await asyncio.wait_for(self._chain(b, req, variant, degraded), self.timeouts.request)
        except TimeoutError:
            metrics.TIMEOUTS.labels(stage="request").inc()
            degraded.append((3, "timeout"))
            return self._popular(b, req, degraded)
        except Exception as e:  # noqa: BLE001 - the caller gets popular items, never an error
            log.error("chain failed for user %s: %s", req.user_id, e, exc_info=e)
            degraded.append((3, "error"))
            return self._popular(b, req, degraded)

    def _finish(self, result: Result, degraded: list[tuple[int, str]]) -> Result:
        for level, reason in dict.fromkeys(degraded):
            metrics.DEGRADED.labels(level=str(level), reason=reason).inc()
        result.degrade_level = max((lvl for lvl, _ in degraded), default=0)
        result.reasons = [r for _, r in degraded]
        return result

    def _popular(self, b: Bundle, req: Request, degraded: list[tuple[int, str]]) -> Result:
        pairs = [(i, s) for i, s in b.popular if i not in req.exclude][: req.k]
        result = Result([i for i, _ in pairs], [float(s) for _, s in pairs], ["popular"] * len(pairs), 3,
                        b.version)  # fmt: skip
        return self._finish(result, degraded)

    async def _timed(self, stage: str, fn: Any, *args: Any, timeout: float | None = None) -> Any:
        start = time.perf_counter()
        try:
            return await asyncio.wait_for(self._run(fn, *args), timeout)
        finally:
            metrics.STAGE_LATENCY.labels(stage=stage).observe(time.perf_counter() - start)

    async def _store(self, stage: str, fn: Any, *args: Any) -> Any:
        """A store read under the store timeout; a timeout is a StoreUnavailable to the caller."""
        try:
            return await self._timed(stage, fn, *args, timeout=self.timeouts.store)
        except TimeoutError as e:
            metrics.TIMEOUTS.labels(stage="store").inc()
            raise StoreUnavailable(f"store: no answer within {self.timeouts.store} s ({stage})") from e

    async def _chain(
        self, b: Bundle, req: Request, variant: Variant, degraded: list[tuple[int, str]]
    ) -> Result:
        try:
            lists = await self._store("history", self.store.recall, HISTORY_CHANNEL, [req.user_id], b.version)
            history = [item for item, _ in lists.get(req.user_id, [])]
        except RecsysError as e:
            log.warning("history of %s unavailable: %s", req.user_id, e)
            history = []
        ctx = RecallContext(history=history, user_industry=b.industries.get(req.user_id), scene=req.scene,
                            exclude=set(history) | req.exclude)  # fmt: skip
        start = time.perf_counter()
        cands = await self._recall(b, req.user_id, ctx, variant)
        metrics.STAGE_LATENCY.labels(stage="recall").observe(time.perf_counter() - start)
        if not cands:
            degraded.append((3, "no_candidates"))
            return self._popular(b, req, degraded)
        ids = [c.item_id for c in cands]
        try:
            lookup = await self._store("features", self.store.lookup, req.user_id, ids, b.version)
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
            return self._popular(b, req, degraded)
        items = lookup.items[keep]
        user = lookup.user if lookup.user is not None else b.user_defaults
        X = await self._timed("matrix", self._matrix, b, user, items, cands)
        cats = items[:, b.category_col]
        ranker = self.rankers.get(variant.ranker, self.rankers["champion"])
        start = time.perf_counter()
        try:
            scores, version = await ranker.score(X, b.schema_hash)
        except PredictorError as e:
            if isinstance(e, PredictorTimeout):
                metrics.TIMEOUTS.labels(stage="predictor").inc()
            if not isinstance(e, CircuitOpen):  # the breaker logs nothing per request of an outage
                log.warning("ranker %s unavailable, recall order: %s", variant.ranker, e)
            degraded.append((2, e.reason))
            scores, version = np.array([c.score for c in cands]), b.version
        else:
            if self.shadow is not None:
                self.shadow.mirror(X, b.schema_hash, scores, req.k)
        metrics.STAGE_LATENCY.labels(stage="predict").observe(time.perf_counter() - start)
        return self._finish(self._top(req, cands, scores, cats, version), degraded)

    @staticmethod
    def _matrix(b: Bundle, user: np.ndarray, items: np.ndarray, cands: list[Candidate]) -> np.ndarray:
        """Exactly the offline order: ranker columns, recall features, position 0."""
        _, recall_x = b.recall.candidate_features(cands)
        context = np.zeros((len(cands), len(CONTEXT_FEATURES)), np.float32)
        return np.hstack([b.cross.ranking_matrix(user, items), recall_x, context])

    @staticmethod
    def _channel(channel: Any, user_id: str, ctx: RecallContext, k: int) -> Any:
        start = time.perf_counter()
        out = channel.recall(user_id, ctx, k)
        metrics.CHANNEL_LATENCY.labels(channel=channel.name).observe(time.perf_counter() - start)
        metrics.CHANNEL_CANDIDATES.labels(channel=channel.name).observe(len(out))
        return out

    async def _recall(self, b: Bundle, user_id: str, ctx: RecallContext, variant: Variant) -> list[Candidate]:
        return await self._run(self._recall_sync, b, user_id, ctx, variant)

    def _recall_sync(self, b: Bundle, user_id: str, ctx: RecallContext, variant: Variant) -> list[Candidate]:
        """In a chain thread: the channels run concurrently in the recall pool, each given the
        channel timeout; then the filter and the fusion. One event-loop wake-up per request
        instead of one per channel (each costs a self-pipe write and a loop turn)."""
        engine = b.recall
        exclude = engine.exclusion.exclude_for(user_id, ctx.exclude)
        ctx = replace(ctx, exclude=exclude)
        futures = {
            self.recall_pool.submit(self._channel, c, user_id, ctx, engine.k[c.name]): c
            for c in engine.channels
            if c.enabled
        }
        _, late = wait(futures, timeout=self.timeouts.channel)
        results: dict[str, Any] = {}
        for future, channel in futures.items():
            if future in late:
                future.cancel()  # not started yet: never runs; running: its result is dropped
                metrics.TIMEOUTS.labels(stage="recall").inc()
                metrics.CHANNEL_TIMEOUTS.labels(channel=channel.name).inc()
            elif future.exception() is not None:
                log.warning("recall channel %s failed: %r", channel.name, future.exception())
                metrics.CHANNEL_ERRORS.labels(channel=channel.name).inc()
            else:
                results[channel.name] = engine.exclusion.drop_inactive(future.result())
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
        if self.shadow is not None:
            await self.shadow.close()
        for ranker in self.rankers.values():
            await ranker.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.recall_pool.shutdown(wait=False, cancel_futures=True)
