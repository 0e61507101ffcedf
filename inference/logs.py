"""Per-request log lines of the KServe server stack, off unless asked for.

uvicorn's access log and KServe's timing middleware (``kserve.trace``) write three lines per
request: at hundreds of requests per second that costs more CPU than parts of the chain, and
Prometheus already counts and times every request.
"""

from __future__ import annotations

import logging

PER_REQUEST_LOGGERS = ("uvicorn.access", "kserve.trace")


def set_request_logs(enabled: bool) -> None:
    for name in PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if enabled else logging.WARNING)
