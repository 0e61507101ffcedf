"""Request limits of both servers, before any route reads a body: size and time.

* A body larger than ``max_request_bytes`` is refused with 413: at once when its
  ``Content-Length`` says so, else as soon as the bytes read pass the limit (the rest is not
  read). A 50 MB JSON body used to be decoded and served, a 78 MB binary one scored row by row.
* A client that stops sending its body for ``body_timeout_s`` gets 408 and the connection is
  closed; it used to hold a worker's request open for as long as it liked.

One plain ASGI middleware, the outermost of each server's app (inference/server.py installs it).
The refusals are JSON ``{"error": ...}`` like every other error of the servers.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024  # a 300 x 98 FP32 ranking request is 118 KB
DEFAULT_BODY_TIMEOUT_S = 10.0
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 500


@dataclass(frozen=True)
class Limits:
    """A server process's limits; the last two are enforced below ASGI (connection_limits.py)."""

    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS


async def refuse(send: Send, status: int, message: str, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """A JSON ``{"error": ...}`` answer sent before the body was read (here and at the edge,
    inference/edge.py), closing the connection: what is left of the body is not read."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *extra]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """Reads each body itself, within the limits, and hands it on whole: the routes and their
    error handlers never see a body that was too big or too slow."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_request_bytes
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await refuse(send, 413, f"request body: {int(declared)} bytes, at most {limit} are accepted")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                async with asyncio.timeout(self.limits.body_timeout_s):  # no task of its own
                    message = await receive()
            except TimeoutError:
                await refuse(
                    send, 408, f"request body: nothing received for {self.limits.body_timeout_s:g} s"
                )
                return
            if message["type"] == "http.disconnect":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await refuse(
                    send, 413, f"request body: more than {limit} bytes, at most {limit} are accepted"
                )
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        await self.app(scope, replay(body, receive), send)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out ``body`` once more, then waits on the connection as before (for
    the disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
