"""Prometheus metrics of the predictor, in the default registry that KServe serves on ``/metrics``.

Request latency is not duplicated here: KServe already exports ``request_predict_seconds`` per
model. These count what KServe cannot know: how requests ended and which bundle answers.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from inference import multiprocess_values

multiprocess_values.install()  # before this process writes its first value

# status: ok | invalid_input | schema_mismatch | error
PREDICTIONS = Counter(
    "recsys_predictor_predictions",
    "Inference requests handled by the ranker predictor, by outcome",
    ["model", "status"],
)
# also counted in PREDICTIONS{status="schema_mismatch"}; kept apart so that an alert on a
# feature-schema drift between transformer and predictor needs no label filter
SCHEMA_MISMATCHES = Counter(
    "recsys_predictor_schema_mismatches",
    "Requests whose schema_hash differs from the served bundle's",
    ["model"],
)
ROWS_SCORED = Counter("recsys_predictor_rows_scored", "Candidate rows scored", ["model"])
RELOADS = Counter(
    "recsys_predictor_reloads",
    "Model reloads (load endpoint or polling), by result: swapped | unchanged | failed",
    ["model", "result"],
)
# the usual *_info pattern: one series with value 1 whose labels say which bundle is served
MODEL_INFO = Gauge(
    "recsys_predictor_model_info",
    "The bundle the predictor serves (value 1)",
    ["model", "version", "runtime", "schema_hash"],
)


_served: dict[str, tuple[str, str, str]] = {}


def set_served(model: str, version: str, runtime: str, schema_hash: str) -> None:
    """Point MODEL_INFO at the new bundle and drop the old bundle's series."""
    previous = _served.pop(model, None)
    if previous is not None:
        MODEL_INFO.remove(model, *previous)
    MODEL_INFO.labels(model=model, version=version, runtime=runtime, schema_hash=schema_hash).set(1)
    _served[model] = (version, runtime, schema_hash)
