"""The online chain: history -> recall -> features -> ranker -> diversity, degrading, never failing.

The same steps as ``recsys.recommend.BundleRecommender`` (the offline chain), with the vectors
read from the online store under the bundle's version and the ranker behind the predictor.
Blocking work (store reads, recall, feature matrix) runs as one job in a bounded thread pool, the
recall channels fanned out from it into a second pool; the event loop only awaits that job and
the predictor. (One job per request, not one per stage: each hop between the loop and a pool
costs a wake-up and GIL hand-offs, which at a few hundred requests per second cost more CPU than
the stages themselves.) Every stage has a budget (``Timeouts``; cut-offs are counted in
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
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference import transformer_metrics as metrics
from inference.experiments import Variant
from inference.ranker_client import CircuitOpen, PredictorError, PredictorTimeout, RankerClient
from inference.shadow import ShadowMirror
from recsys.chain.users import UserStates
from recsys.errors import PipelineError, RecsysError
from recsys.recall.base import RecallContext
from recsys.recall.fusion import Candidates
from recsys.recall.lists import Hits
from recsys.recommend import load_chain
from recsys.steps.common import HISTORIES_FILE
from recsys.steps.features import read_registry
from recsys.steps.sync import HISTORY_CHANNEL, SEEN_CHANNEL, USER_CHANNELS
from recsys.store import FallbackStore, Lookup, OnlineStore, UserView
from recsys.store.cache import ItemVectorCache

log = logging.getLogger("kserve.recsys.chain")
STAGES = ("history", "recall", "features", "matrix", "predict")
STAGE = {stage: metrics.STAGE_LATENCY.labels(stage=stage) for stage in STAGES}


class Bundle:
    """What the transformer needs from a bundle: the ranking chain, user states, popular list."""

    def __init__(self, path: Path) -> None:
        self.chain, _ = load_chain(path)  # the library's chain, its input checked against the ranker
        self.path = path
        self.version = str(json.loads((path / "manifest.json").read_text()).get("version") or path.name)
        registry = read_registry(path / "features")
        self.recall = self.chain.recall
        self.schema_hash = self.chain.schema_hash
        self.user_columns = registry.vector_columns("user")
        self.item_columns = registry.vector_columns("item")
        self.user_defaults = np.asarray(registry.vector_defaults("user"), dtype=np.float32)
        self.industries = UserStates.load(path / HISTORIES_FILE).industry
        self.feature_names = self.chain.columns
        self.popular = self._popular()
        self.item_cache: ItemVectorCache | None = None

    def bind(self, store: OnlineStore, cache_items: int = 100_000) -> Bundle:
        """Check that the store holds this bundle's vectors; give the bundle an item-vector cache
        of ``cache_items`` rows (0: none)."""
        items = store.feature_names("item", self.version)
        users = store.feature_names("user", self.version)
        if items != self.item_columns or users != self.user_columns:
            raise PipelineError(f"transformer: the store's vectors of {self.version} are not the bundle's")
        if cache_items > 0:
            self.item_cache = ItemVectorCache(self.version, len(items), cache_items)
        return self

    def lookup(self, store: OnlineStore, user_id: str, item_ids: list[str], user: UserView | None) -> Lookup:
        """Vectors of the user and of ``item_ids``; ``user``: the user's vector already read."""
        if self.item_cache is None:
            return store.lookup(user_id, item_ids, self.version)
        return self.item_cache.lookup(store, user_id, item_ids, user)

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


class StateLog:
    """One WARNING when a dependency starts failing and one when it works again, instead of
    one per request of an outage (thousands a second). Failures in between are counted by
    ``recommendation_degraded_total``."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failed = False

    def failing(self, message: str) -> None:
        if not self.failed:
            self.failed = True
            log.warning("%s failing (logged once until they recover): %s", self.what, message)

    def ok(self) -> None:
        if self.failed:
            self.failed = False
            log.warning("%s work again", self.what)


@dataclass(frozen=True)
class Timeouts:
    """Seconds each recall channel may take; ``request`` bounds the whole chain. (Store reads
    are bounded by the store itself: see ``open_online_store(timeout_s=...)``.)"""

    channel: float = 0.05
    request: float = 0.25


@dataclass
class Request:
    user_id: str
    k: int = 10
    scene: str | None = None
    exclude: set[str] = field(default_factory=set)
    request_id: str = ""  # sent on to the predictor (and the shadow) as the v2 request id


class Chain:
    def __init__(
        self,
        bundle: Bundle,
        store: OnlineStore,
        rankers: dict[str, RankerClient],
        *,
        threads: int = 1,
        recall_threads: int = 2,
        timeouts: Timeouts = Timeouts(),
        candidates: int | None = None,
        category_cap: int | None = None,
        shadow: ShadowMirror | None = None,
        cache_items: int = 100_000,
    ) -> None:
        if "champion" not in rankers:
            raise PipelineError("transformer: no predictor for the champion ranker")
        self.store, self.rankers, self.shadow = store, rankers, shadow
        self.cache_items = cache_items
        # None: the bundle's chain settings (chain.json), with which it was evaluated
        self.candidates, self.category_cap = candidates, category_cap
        self.bundle = self.bind(bundle)
        # two pools: a chain job waits for its channels, so they must not queue behind it. One
        # chain thread by default: under the GIL a second one only interleaves two requests,
        # which makes both late (a worse tail at the same throughput). Channels get two, so
        # that one hung channel does not starve the others of their timeout.
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="recsys-chain")
        self.recall_pool = ThreadPoolExecutor(max_workers=recall_threads, thread_name_prefix="recsys-recall")
        self.recall_threads = recall_threads
        self.chain_queue = metrics.POOL_QUEUE.labels(pool="chain")
        self.recall_queue = metrics.POOL_QUEUE.labels(pool="recall")
        self.timeouts = timeouts
        self.fallback_name = store.fallback.name if isinstance(store, FallbackStore) else None
        self.store_state = StateLog("store reads")

    def bind(self, bundle: Bundle) -> Bundle:
        """``bundle`` checked against this chain's store, with its item-vector cache (and the
        serving overrides of its chain settings, if any)."""
        overrides = {k: v for k, v in (("candidates", self.candidates), ("category_cap", self.category_cap))
                     if v is not None}  # fmt: skip
        if overrides:
            bundle.chain.config = bundle.chain.config.model_copy(update=overrides)
        return bundle.bind(self.store, self.cache_items)

    def swap(self, bundle: Bundle) -> None:
        """Serve ``bundle`` from the next request on (it must be bound to this chain's store)."""
        self.bundle = bundle

    async def recommend(self, req: Request, variant: Variant) -> Result:
        degraded: list[tuple[int, str]] = []
        b = self.bundle  # this request's snapshot
        try:
            async with asyncio.timeout(self.timeouts.request):  # no task of its own, unlike wait_for
                result = await self._chain(b, req, variant, degraded)
        except TimeoutError:
            metrics.TIMEOUTS.labels(stage="request").inc()
            degraded.append((3, "timeout"))
            result = self._popular(b, req)
        except Exception as e:  # noqa: BLE001 - the caller gets popular items, never an error
            log.error("chain failed for user %s: %s", req.user_id, e, exc_info=e)
            degraded.append((3, "error"))
            result = self._popular(b, req)
        return self._finish(result, degraded)

    def _finish(self, result: Result, degraded: list[tuple[int, str]]) -> Result:
        for level, reason in dict.fromkeys(degraded):
            metrics.DEGRADED.labels(level=str(level), reason=reason).inc()
        result.degrade_level = max((lvl for lvl, _ in degraded), default=0)
        result.reasons = [r for _, r in degraded]
        return result

    @staticmethod
    def _popular(b: Bundle, req: Request) -> Result:
        pairs = [(i, s) for i, s in b.popular if i not in req.exclude][: req.k]
        return Result([i for i, _ in pairs], [float(s) for _, s in pairs], ["popular"] * len(pairs), 3,
                      b.version)  # fmt: skip

    async def _chain(
        self, b: Bundle, req: Request, variant: Variant, degraded: list[tuple[int, str]]
    ) -> Result:
        # the job reports into its own list: after a deadline its late findings are dropped
        found: list[tuple[int, str]] = []
        self.chain_queue.set(self.pool._work_queue.qsize())  # what this request waits behind
        prepared = await asyncio.get_running_loop().run_in_executor(
            self.pool, self._prepare, b, req, variant, found
        )
        degraded.extend(found)
        if isinstance(prepared, Result):
            return prepared
        cands, X, cats = prepared
        ranker = self.rankers.get(variant.ranker, self.rankers["champion"])
        start = time.perf_counter()
        try:
            scores, version = await ranker.score(
                X, b.schema_hash, shared=b.chain.n_user_columns, request_id=req.request_id
            )
        except PredictorError as e:
            if isinstance(e, PredictorTimeout):
                metrics.TIMEOUTS.labels(stage="predictor").inc()
            if not isinstance(e, CircuitOpen):  # the breaker logs nothing per request of an outage
                log.warning("ranker %s unavailable, recall order: %s", variant.ranker, e)
            degraded.append((2, e.reason))
            scores, version = cands.scores, b.version
        else:
            if self.shadow is not None:
                self.shadow.mirror(X, b.schema_hash, scores, req.k, b.chain.n_user_columns, req.request_id)
        STAGE["predict"].observe(time.perf_counter() - start)
        return self._top(b, req, cands, scores, cats, version)

    def _prepare(
        self, b: Bundle, req: Request, variant: Variant, degraded: list[tuple[int, str]]
    ) -> tuple[Candidates, np.ndarray, np.ndarray] | Result:
        """In a chain thread: history, recall, feature lookup and matrix; a Result when the
        request ends early (popular items, or recall order without vectors). Store reads are cut
        off by the store's own socket timeout, after which the fallback answers (counted as
        ``timeouts{stage="store"}`` by the store's hook)."""
        start = time.perf_counter()
        view: UserView | None = None
        try:  # one read for the history, the seen items and the user's vector
            view = self.store.user_view(req.user_id, USER_CHANNELS, b.version)
            history = [item for item, _ in view.lists[HISTORY_CHANNEL]]
            seen = {item for item, _ in view.lists[SEEN_CHANNEL]}
        except RecsysError as e:
            self.store_state.failing(f"the history of {req.user_id} is unavailable: {e}")
            history, seen = [], set()
        now = time.perf_counter()
        STAGE["history"].observe(now - start)
        ctx = b.chain.context(history, seen, b.industries.get(req.user_id), req.scene, req.exclude)
        cands = self._recall_sync(b, req.user_id, ctx, variant)
        start, now = now, time.perf_counter()
        STAGE["recall"].observe(now - start)
        if not cands:
            degraded.append((3, "no_candidates"))
            return self._popular(b, req)
        ids = cands.ids
        try:
            lookup = b.lookup(self.store, req.user_id, ids, view)
        except RecsysError as e:
            self.store_state.failing(f"the vectors are unavailable, recall order: {e}")
            degraded.append((2, "store"))
            return self._top(b, req, cands, cands.scores, None, b.version)
        if view is not None:
            self.store_state.ok()
        start, now = now, time.perf_counter()
        STAGE["features"].observe(now - start)
        if self.fallback_name and lookup.served_by == self.fallback_name:
            degraded.append((1, "store_fallback"))
        keep = np.flatnonzero(lookup.found)
        if len(keep) < len(cands):
            cands = cands.take(keep)
        if not cands:
            degraded.append((3, "no_vectors"))
            return self._popular(b, req)
        items = lookup.items[keep]
        user = lookup.user if lookup.user is not None else b.user_defaults
        X = b.chain.matrix(user, items, cands)  # exactly the offline input
        STAGE["matrix"].observe(time.perf_counter() - now)
        return cands, X, b.chain.categories(items)

    @staticmethod
    def _channel(channel: Any, user_id: str, ctx: RecallContext, k: int) -> Any:
        start = time.perf_counter()
        out = channel.recall_hits(user_id, ctx, k)
        metrics.child(metrics.CHANNEL_LATENCY, channel.name).observe(time.perf_counter() - start)
        metrics.child(metrics.CHANNEL_CANDIDATES, channel.name).observe(len(out[0]))
        return out

    def _recall_sync(self, b: Bundle, user_id: str, ctx: RecallContext, variant: Variant) -> Candidates:
        """In a chain thread: the channels run concurrently in the recall pool, all within the
        channel timeout; then the filter and the fusion.

        The pool gets one job per thread, not one per channel: each job takes the next channel
        not yet started until none is left or the time is up (nine hand-offs per request cost
        more than most channels, ~0.1 ms each). A channel that hangs holds its thread only: the
        other jobs take the rest; a channel unfinished at the deadline is dropped and counted.
        """
        engine = b.recall
        channels = [c for c in engine.channels if c.enabled]
        waiting = deque(channels)
        done: dict[str, Hits | BaseException] = {}  # filled by the jobs; read once, at the end
        deadline = time.monotonic() + self.timeouts.channel

        def job() -> None:
            while time.monotonic() < deadline:
                try:
                    channel = waiting.popleft()
                except IndexError:
                    return
                try:
                    done[channel.name] = self._channel(channel, user_id, ctx, engine.k[channel.name])
                except Exception as e:  # noqa: BLE001 - one channel's failure is counted, not raised
                    done[channel.name] = e

        self.recall_queue.set(self.recall_pool._work_queue.qsize())
        jobs = [self.recall_pool.submit(job) for _ in range(min(self.recall_threads, len(channels)))]
        wait(jobs, timeout=max(0.0, deadline - time.monotonic()))
        finished = dict(done)  # what a job adds after the deadline is dropped
        results: dict[str, Hits] = {}
        for channel in channels:
            out = finished.get(channel.name)
            if out is None:
                metrics.TIMEOUTS.labels(stage="recall").inc()
                metrics.CHANNEL_TIMEOUTS.labels(channel=channel.name).inc()
            elif isinstance(out, BaseException):
                log.warning("recall channel %s failed: %r", channel.name, out)
                metrics.CHANNEL_ERRORS.labels(channel=channel.name).inc()
            else:
                results[channel.name] = engine.drop_inactive(out)
        return b.chain.fuse(results, ctx, variant.recall_weights)

    @staticmethod
    def _top(b: Bundle, req: Request, cands: Candidates, scores: np.ndarray, cats: np.ndarray | None,
             version: str) -> Result:  # fmt: skip
        """The chain's diversity and top k (no category cap without the vectors' categories)."""
        if cats is None:
            cats = np.arange(len(cands), dtype=np.float64)  # every candidate its own category
        picked = b.chain.order(scores, cats, req.k)
        return Result(
            items=[cands.ids[i] for i in picked],
            scores=[float(scores[i]) for i in picked],
            channels=[",".join(names) for names in cands.channel_lists(picked)],
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
