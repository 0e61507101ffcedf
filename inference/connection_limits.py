"""Connection limits of both servers, in uvicorn's HTTP protocols (below ASGI, where no middleware
reaches): a time limit on request headers and a cap on open connections per worker process.

uvicorn (0.55, the version kserve 0.21 brings) starts a connection's keep-alive timer only after
a response, and cancels it when data arrives. A client that connects and sends nothing, or half a
request header, held its socket for as long as it liked (seen: stalled headers still open after
15 s, 1,000 half-open connections accepted). Here:

* a new connection, and each request on a kept-alive one from its first byte on, must complete
  its headers within ``header_timeout_s``, else it is answered 408 and closed (the body's own
  limit is ``RequestLimits``' in inference/limits.py; idle time between requests stays the
  keep-alive timeout's, so load balancers' pooled connections are not cut);
* beyond ``max_connections`` open connections in this process, a new one is answered 503 with
  ``Retry-After: 1`` and closed at once.

``install`` wraps four methods of each protocol class once; the limits are read from
``LIMITS`` at call time, so each worker process can set its own. The wrapped methods are the
same in both protocol classes (checked by tests/unit/test_connection_limits.py on the pinned
uvicorn).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from inference.limits import Limits

PROTOCOLS = (H11Protocol, HttpToolsProtocol)
LIMITS = [Limits()]  # this process's; set by inference/server.py's set_limits


def _response(status: int, reason: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n")  # fmt: skip
    return head.encode() + body


def _refuse(protocol: Any, payload: bytes) -> None:
    transport: asyncio.Transport = protocol.transport
    if not transport.is_closing():
        transport.write(payload)
        transport.close()


def _arm(protocol: Any) -> None:
    """Start the header clock: it fires unless a new request's headers arrive before."""
    _disarm(protocol)
    watched = protocol.cycle
    protocol._recsys_header_timer = protocol.loop.call_later(
        LIMITS[0].header_timeout_s, _expire, protocol, watched
    )


def _disarm(protocol: Any) -> None:
    timer = getattr(protocol, "_recsys_header_timer", None)
    if timer is not None:
        timer.cancel()
        protocol._recsys_header_timer = None


def _expire(protocol: Any, watched: object) -> None:
    protocol._recsys_header_timer = None
    if protocol.cycle is watched:  # no request's headers completed since the clock started
        seconds = LIMITS[0].header_timeout_s
        _refuse(
            protocol, _response(408, "Request Timeout", f"request headers: not complete within {seconds:g} s")
        )


def _idle(protocol: Any) -> bool:
    cycle = protocol.cycle
    return cycle is None or cycle.response_complete


def install() -> None:
    for cls in PROTOCOLS:
        if getattr(cls, "_recsys_limited", False):
            continue
        made, received, complete, lost = (
            cls.connection_made, cls.data_received, cls.on_response_complete, cls.connection_lost
        )  # fmt: skip

        def connection_made(self: Any, transport: asyncio.Transport, _made: Any = made) -> None:
            _made(self, transport)
            cap = LIMITS[0].max_connections
            if len(self.connections) > cap:
                message = f"too many connections: this server process holds {cap}; retry"
                _refuse(self, _response(503, "Service Unavailable", message, "retry-after: 1\r\n"))
                return
            _arm(self)

        def data_received(self: Any, data: bytes, _received: Any = received) -> None:
            if getattr(self, "_recsys_header_timer", None) is None and _idle(self):
                _arm(self)  # the first bytes of the next request on a kept-alive connection
            _received(self, data)

        def on_response_complete(self: Any, _complete: Any = complete) -> None:
            _disarm(self)
            _complete(self)

        def connection_lost(self: Any, exc: Exception | None, _lost: Any = lost) -> None:
            _disarm(self)
            _lost(self, exc)

        cls.connection_made = connection_made  # type: ignore[method-assign]
        cls.data_received = data_received  # type: ignore[method-assign]
        cls.on_response_complete = on_response_complete  # type: ignore[method-assign]
        cls.connection_lost = connection_lost  # type: ignore[method-assign]
        cls._recsys_limited = True  # type: ignore[attr-defined]
