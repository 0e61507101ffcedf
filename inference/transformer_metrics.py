"""Prometheus metrics of the transformer, in the default registry KServe serves on ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

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
    "Latency of one chain stage: history | recall | features | predict",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
# level: 1 store fallback | 2 recall order | 3 popular items
DEGRADED = Counter(
    "recommendation_degraded", "Answers served degraded, by level and reason", ["level", "reason"]
)
CHANNEL_TIMEOUTS = Counter(
    "recommendation_recall_channel_timeouts", "Recall channels skipped after their timeout", ["channel"]
)
CHANNEL_ERRORS = Counter(
    "recommendation_recall_channel_errors", "Recall channels skipped after an error", ["channel"]
)
EXPOSURES_DROPPED = Counter(
    "recommendation_exposures_dropped", "Exposure records dropped because the log queue was full"
)
