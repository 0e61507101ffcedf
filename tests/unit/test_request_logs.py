"""Per-request logging off (the default) also leaves KServe's timing middleware out; the v2
infer fast path is always in, innermost, so that the timing middleware (when on) wraps it."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from fastapi import FastAPI
from kserve.protocol.rest.server import RESTServer
from timing_asgi import TimingMiddleware

from inference.edge import EdgeGuard
from inference.fast_infer import InferFastPath
from inference.limits import RequestLimits
from inference.server import set_request_logs


def middlewares(request_logs: bool) -> list[type]:
    set_request_logs(request_logs)
    app = FastAPI()
    rest = SimpleNamespace(access_log_format=None, dataplane=None)
    RESTServer._add_middlewares(rest, app)  # type: ignore[arg-type]
    return [m.cls for m in app.user_middleware]


def test_timing_middleware_only_with_request_logs() -> None:
    try:
        # the edge, then the request limits, are always the outermost (inference/edge.py, limits.py)
        assert middlewares(False) == [EdgeGuard, RequestLimits, InferFastPath]
        assert not logging.getLogger("kserve.trace").isEnabledFor(logging.INFO)
        assert middlewares(True) == [
            EdgeGuard,
            RequestLimits,
            TimingMiddleware,
            InferFastPath,
        ]  # outermost first
        assert logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
    finally:
        set_request_logs(True)  # KServe's own default for whatever runs next in this process
