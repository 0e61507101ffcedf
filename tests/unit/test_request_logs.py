"""Per-request logging off (the default) also leaves KServe's timing middleware out."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from fastapi import FastAPI
from kserve.protocol.rest.server import RESTServer
from timing_asgi import TimingMiddleware

from inference.server import set_request_logs


def middlewares(request_logs: bool) -> list[type]:
    set_request_logs(request_logs)
    app = FastAPI()
    RESTServer._add_middlewares(SimpleNamespace(access_log_format=None), app)  # type: ignore[arg-type]
    return [m.cls for m in app.user_middleware]


def test_timing_middleware_only_with_request_logs() -> None:
    try:
        assert TimingMiddleware not in middlewares(False)
        assert not logging.getLogger("kserve.trace").isEnabledFor(logging.INFO)
        assert TimingMiddleware in middlewares(True)
        assert logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
    finally:
        set_request_logs(True)  # KServe's own default for whatever runs next in this process
