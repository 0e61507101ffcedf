"""Prometheus metrics of the transformer, in the default registry KServe serves on ``/metrics``.

Counters are exported with a ``_total`` suffix (``recommendation_requests_total``, ...). With
``--workers N`` each process writes its values under ``PROMETHEUS_MULTIPROC_DIR`` and /metrics
adds them up (gauges: queue sizes summed, circuit states per ``pid``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from inference import multiprocess_values
from recsys.errors import StoreError, StoreTimeout
from recsys.resilience import STATE_VALUE

multiprocess_values.install()  # before this process writes its first value

# fine below 50 ms, where the latency objective (p95 25-40 ms) lives
LATENCY_BUCKETS = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
    0.075, 0.1, 0.15, 0.25, 0.5, 1.0,
)  # fmt: skip
COUNT_BUCKETS = (0, 1, 5, 10, 25, 50, 100, 200, 300, 500)
SHARE_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
CORRELATION_BUCKETS = (-0.5, 0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

# status: ok | invalid_input | error
REQUESTS = Counter(
    "recommendation_requests", "Recommendation requests by outcome and variant", ["status", "variant"]
)
LATENCY = Histogram(
    "recommendation_latency_seconds",
    "End-to-end transformer latency of answered requests",
    ["variant"],
    buckets=LATENCY_BUCKETS,
)
STAGE_LATENCY = Histogram(
    "recommendation_stage_seconds",
    "Latency of one chain stage: history | recall | features | matrix | predict",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
# level: 1 store fallback | 2 recall order | 3 popular items
DEGRADED = Counter(
    "recommendation_degraded", "Answers served degraded, by level and reason", ["level", "reason"]
)
# stage: store | recall | predictor | request
TIMEOUTS = Counter("recommendation_timeouts", "Chain stages cut off by their timeout", ["stage"])
STORE_REPAIRS = Counter(
    "recommendation_store_repairs", "Refills of an empty primary store from the fallback", ["outcome"]
)
CHANNEL_LATENCY = Histogram(
    "recommendation_recall_channel_seconds", "Latency of one recall channel", ["channel"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
CHANNEL_CANDIDATES = Histogram(
    "recommendation_recall_channel_candidates", "Candidates one recall channel returned", ["channel"],
    buckets=COUNT_BUCKETS,
)  # fmt: skip
CHANNEL_TIMEOUTS = Counter(
    "recommendation_recall_channel_timeouts", "Recall channels skipped after their timeout", ["channel"]
)
CHANNEL_ERRORS = Counter(
    "recommendation_recall_channel_errors", "Recall channels skipped after an error", ["channel"]
)
EXPOSED_ITEMS = Counter(
    "recommendation_exposed_items", "Items returned to callers, by experiment variant", ["variant"]
)
EXPOSURES_DROPPED = Counter(
    "recommendation_exposures_dropped", "Exposure records dropped because the log queue was full"
)
# set at each submission (not read at scrape time): with several workers the scrape may come
# from any of them, and only values written down add up across processes
POOL_QUEUE = Gauge(
    "recommendation_thread_pool_queue_size",
    "Tasks waiting for a thread, by pool: chain | recall",
    ["pool"],
    multiprocess_mode="livesum",
)
# one series per worker process (label pid) from when it accepts: are the connections spread evenly?
WORKER_CONNECTIONS = Gauge(
    "recommendation_worker_connections",
    "Open client connections of one transformer worker process on one port (--workers > 1)",
    ["port"],
    multiprocess_mode="liveall",
)
# 0 closed | 1 open | 2 half_open; target: the store or predictor behind the breaker
CIRCUIT_STATE = Gauge("recommendation_circuit_state", "Circuit breaker state", ["target"])
CIRCUIT_OPENED = Counter("recommendation_circuit_opened", "Times a circuit breaker opened", ["target"])
# result: ok | error | dropped (busy) | sampled_out is not counted
SHADOW_REQUESTS = Counter(
    "recommendation_shadow_requests", "Ranking requests mirrored to the shadow predictor", ["result"]
)
SHADOW_OVERLAP = Histogram(
    "recommendation_shadow_topk_overlap",
    "Share of the served top k that the shadow ranking also puts in its top k",
    buckets=SHARE_BUCKETS,
)
SHADOW_CORRELATION = Histogram(
    "recommendation_shadow_rank_correlation",
    "Spearman correlation of the served and the shadow scores over all candidates",
    buckets=CORRELATION_BUCKETS,
)
SHADOW_LATENCY = Histogram(
    "recommendation_shadow_latency_seconds", "Latency of the shadow predictor", buckets=LATENCY_BUCKETS
)
RELOADS = Counter(
    "recommendation_bundle_reloads", "Bundle reloads by result: swapped | unchanged | failed", ["result"]
)


@cache
def child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, looked up once per process: the hot path names the same few
    series (channels, variants) ~20 times per request. Only for bounded label values."""
    return metric.labels(*values)


def track_worker_connections(port: int, open_now: int) -> None:
    """A balanced-accept ``on_change`` hook."""
    WORKER_CONNECTIONS.labels(port=str(port)).set(open_now)


def track_breaker(target: str, state: str) -> None:
    """A CircuitBreaker ``on_change`` hook."""
    CIRCUIT_STATE.labels(target=target).set(STATE_VALUE[state])  # type: ignore[index]
    if state == "open":
        CIRCUIT_OPENED.labels(target=target).inc()


def store_unavailable(error: StoreError) -> None:
    """A FallbackStore ``on_unavailable`` hook: a primary read cut off by its timeout."""
    if isinstance(error, StoreTimeout):
        TIMEOUTS.labels(stage="store").inc()


def store_repair(outcome: str) -> None:
    """A FallbackStore ``on_repair`` hook: the primary refilled from the fallback, or not."""
    STORE_REPAIRS.labels(outcome=outcome).inc()


def bad_request(_model_name: str | None) -> None:
    """A request KServe rejected before the model saw it (inference/bad_requests.py)."""
    REQUESTS.labels(status="invalid_input", variant="").inc()
