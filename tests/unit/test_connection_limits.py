"""Connection limits (inference/connection_limits.py) on a real uvicorn server over loopback,
with each of its two HTTP protocols: stalled or missing headers get 408 and a closed socket, a
kept-alive idle connection is left to the keep-alive timeout, and connections past the cap are
refused with 503 + Retry-After."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from serving_helpers import free_port

from inference import connection_limits
from inference.limits import Limits


async def hello(scope: dict, receive: object, send: object) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


@pytest.fixture(params=["httptools", "h11"])
def server(request: pytest.FixtureRequest) -> Iterator[int]:
    connection_limits.LIMITS[0] = Limits(header_timeout_s=0.4, max_connections=5)
    connection_limits.install()
    port = free_port()
    config = uvicorn.Config(hello, host="127.0.0.1", port=port, http=request.param, log_level="error",
                            timeout_keep_alive=5, lifespan="off")  # fmt: skip
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port
    srv.should_exit = True
    thread.join(timeout=10)
    connection_limits.LIMITS[0] = Limits()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


GET = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


def get(sock: socket.socket) -> bytes:
    """One request on a kept-alive connection; the whole response (its body is 2 bytes)."""
    sock.sendall(GET)
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def test_a_connection_that_sends_nothing_gets_408_and_is_closed(server: int) -> None:
    sock = connect(server)
    start = time.monotonic()
    answer = read_all(sock)  # returns when the server closes
    assert answer.startswith(b"HTTP/1.1 408 ") and b"request headers: not complete within 0.4 s" in answer
    assert 0.3 < time.monotonic() - start < 3


def test_stalled_headers_get_408_also_on_a_kept_alive_connection(server: int) -> None:
    sock = connect(server)
    sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: ")  # and never the rest
    assert read_all(sock).startswith(b"HTTP/1.1 408 ")
    sock = connect(server)
    assert get(sock).startswith(b"HTTP/1.1 200 ")
    time.sleep(0.6)  # idle between requests, longer than the header limit: still open
    sock.sendall(b"GET / HTTP/1.1\r\n")
    assert read_all(sock).startswith(b"HTTP/1.1 408 ")


def test_a_kept_alive_connection_serves_requests_past_the_header_limit(server: int) -> None:
    sock = connect(server)
    for _ in range(4):
        assert get(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(0.25)  # 1 s in all, over two header limits
    sock.close()


def test_connections_past_the_cap_are_refused_with_503(server: int) -> None:
    held = [connect(server) for _ in range(5)]
    time.sleep(0.1)
    extra = connect(server)
    answer = read_all(extra)
    assert answer.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in answer.lower()
    for sock in held:
        sock.close()
    time.sleep(0.1)
    assert get(connect(server)).startswith(b"HTTP/1.1 200 ")  # below the cap again
