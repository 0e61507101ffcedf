"""Shadow ranking: mirror a sample of ranking requests to a second predictor, off the answer path.

KServe has no native traffic mirroring, so the transformer does it: after the served ranking is
known, a sampled request's feature matrix goes to the shadow predictor in a background task.
At most ``max_in_flight`` mirrors run at once; a mirror that would exceed that is dropped (and
counted), never queued, so a slow shadow cannot build a backlog or delay answers. How much the
shadow agrees with the served ranking is recorded as a top-k overlap and a Spearman rank
correlation. The shadow must accept the served bundle's feature schema (e.g. the challenger
retrained on the same features); a schema mismatch is counted as ``error``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import numpy as np

from inference import transformer_metrics as metrics
from inference.ranker_client import PredictorError, RankerClient

log = logging.getLogger("kserve.recsys.shadow")


def topk_overlap(served: np.ndarray, shadow: np.ndarray, k: int) -> float:
    """Share of the served top ``k`` (by score) that is also in the shadow's top ``k``."""
    k = min(k, len(served))
    if k == 0:
        return 1.0
    a = set(np.argsort(-served, kind="stable")[:k].tolist())
    b = set(np.argsort(-shadow, kind="stable")[:k].tolist())
    return len(a & b) / k


def rank_correlation(served: np.ndarray, shadow: np.ndarray) -> float:
    """Spearman's rho (ordinal ranks, ties broken by position); 1.0 for fewer than 2 items or a
    constant input, where the rankings cannot disagree."""
    if len(served) < 2 or np.ptp(served) == 0 or np.ptp(shadow) == 0:
        return 1.0
    ra = np.argsort(np.argsort(served, kind="stable"), kind="stable").astype(np.float64)
    rb = np.argsort(np.argsort(shadow, kind="stable"), kind="stable").astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


class ShadowMirror:
    def __init__(
        self,
        client: RankerClient,
        sample_rate: float = 0.1,
        max_in_flight: int = 4,
        *,
        seed: int | None = None,
    ) -> None:
        if not 0 <= sample_rate <= 1 or max_in_flight < 1:
            raise ValueError("shadow: sample_rate must be in [0, 1] and max_in_flight >= 1")
        self.client, self.sample_rate, self.max_in_flight = client, sample_rate, max_in_flight
        self._rng = random.Random(seed)
        self._tasks: set[asyncio.Task[None]] = set()

    def mirror(
        self,
        X: np.ndarray,
        schema_hash: str,
        served: np.ndarray,
        k: int,
        shared: int = 0,
        request_id: str = "",
    ) -> bool:
        """Start a mirror of this ranking request if sampled and a slot is free; never waits."""
        if self._rng.random() >= self.sample_rate:
            return False
        if len(self._tasks) >= self.max_in_flight:
            metrics.SHADOW_REQUESTS.labels(result="dropped").inc()
            return False
        task = asyncio.get_running_loop().create_task(
            self._run(X, schema_hash, served, k, shared, request_id)
        )
        self._tasks.add(task)  # a strong reference until done, or the task may be collected
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(
        self, X: np.ndarray, schema_hash: str, served: np.ndarray, k: int, shared: int, request_id: str
    ) -> None:
        start = time.perf_counter()
        try:
            shadow, _ = await self.client.score(X, schema_hash, shared, request_id)
        except PredictorError as e:
            metrics.SHADOW_REQUESTS.labels(result="error").inc()
            log.debug("shadow predictor failed: %s", e)
            return
        metrics.SHADOW_LATENCY.observe(time.perf_counter() - start)
        metrics.SHADOW_REQUESTS.labels(result="ok").inc()
        metrics.SHADOW_OVERLAP.observe(topk_overlap(served, shadow, k))
        metrics.SHADOW_CORRELATION.observe(rank_correlation(served, shadow))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()
