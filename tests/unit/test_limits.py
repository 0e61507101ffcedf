"""Request limits (inference/limits.py): too big is 413 before the rest is read, too slow is 408,
and what fits reaches the route whole."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from inference.limits import Limits, RequestLimits

Message = dict[str, Any]


async def echo_app(scope: dict, receive: Any, send: Any) -> None:
    """Answers with the size of the body it read (and counts its calls)."""
    echo_app.calls += 1  # type: ignore[attr-defined]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    payload = json.dumps({"bytes": len(body)}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": payload})


echo_app.calls = 0  # type: ignore[attr-defined]


def call(messages: list[Message | float], headers: list[tuple[bytes, bytes]] | None = None,
         limits: Limits = Limits(100, 0.2)) -> tuple[int, dict, int]:  # fmt: skip
    """Run the middleware on a request whose body arrives as ``messages`` (a float: a pause)."""
    sent: list[Message] = []
    queue = list(messages)
    read = 0

    async def receive() -> Message:
        nonlocal read
        while queue and isinstance(queue[0], float):
            await asyncio.sleep(queue.pop(0))  # type: ignore[arg-type]
        if not queue:
            await asyncio.sleep(3600)  # a client that never sends the rest
        read += 1
        return queue.pop(0)  # type: ignore[return-value]

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v2/models/m/infer", "headers": headers or []}
    before = echo_app.calls  # type: ignore[attr-defined]
    asyncio.run(RequestLimits(echo_app, limits)(scope, receive, send))
    status = sent[0]["status"]
    body = json.loads(sent[1]["body"])
    assert (echo_app.calls - before == 1) == (status == 200)  # type: ignore[attr-defined]
    return status, body, read


def chunk(n: int, more: bool = False) -> Message:
    return {"type": "http.request", "body": b"x" * n, "more_body": more}


def test_a_body_that_fits_reaches_the_route_whole() -> None:
    assert call([chunk(60, True), chunk(40)])[:2] == (200, {"bytes": 100})
    assert call([chunk(0)])[:2] == (200, {"bytes": 0})


def test_a_declared_length_over_the_limit_is_413_before_reading() -> None:
    status, body, read = call([chunk(50)], headers=[(b"content-length", b"50000000")])
    assert status == 413 and "50000000 bytes, at most 100" in body["error"] and read == 0


def test_an_undeclared_body_over_the_limit_is_413_without_reading_the_rest() -> None:
    status, body, read = call([chunk(80, True), chunk(80, True), chunk(80, True), chunk(1)])
    assert status == 413 and "more than 100 bytes" in body["error"] and read == 2


def test_a_stalled_body_is_408() -> None:
    status, body, _ = call([chunk(10, True), 0.05, chunk(10, True)])  # then nothing more
    assert status == 408 and "nothing received for 0.2 s" in body["error"]
    assert call([chunk(10, True), 0.05, chunk(10)])[0] == 200  # slow but steady is fine
