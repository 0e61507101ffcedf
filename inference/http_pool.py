"""A small HTTP/1.1 keep-alive client for one upstream: the transformer's calls to its predictor.

Why not aiohttp: the call is always the same (one POST of ~73 KB to one host, a Content-Length
answer of a few KB), and aiohttp's general machinery around it (request and response objects,
header multidicts, timers, connector bookkeeping) cost more than writing the body to the
socket. This client writes the request head and body with one ``writelines`` and parses the
answer with httptools (the parser uvicorn uses): 0.41-0.47 ms of client CPU per call against
0.93-1.00 ms with aiohttp (1,500 calls to a live predictor, docs/BENCHMARKS.md).

What it does and does not do:
- keeps up to ``limit`` connections, idle ones reused last-in first-out;
- a request that fails on a reused connection before any byte of the answer arrived (the server
  closed it while idle) is sent once more on a new connection: every call here is idempotent;
- ``Connection: close`` answers, and any error or cancellation mid-request, close the connection
  instead of returning it to the pool;
- no redirects, proxies, cookies or compression: the upstream is our own predictor.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools


class UpstreamError(ConnectionError):
    """The connection failed or the answer was not valid HTTP."""


class Unanswered(UpstreamError):
    """The connection failed before any byte of the answer arrived."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class _Exchange:
    future: asyncio.Future[Answer]
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    started: bool = False  # a byte of the answer arrived
    keep_alive: bool = True


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._parser: httptools.HttpResponseParser | None = None
        self._exchange: _Exchange | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex = self._exchange
        if ex is not None and not ex.future.done():
            error = UpstreamError if ex.started else Unanswered
            ex.future.set_exception(error(f"connection closed by the server: {exc or 'EOF'}"))

    def send(self, head: bytes, body: bytes, future: asyncio.Future[Answer]) -> _Exchange:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise Unanswered("connection closed by the server while idle")
        self._exchange = _Exchange(future)
        self._parser = httptools.HttpResponseParser(self)
        self.transport.writelines((head, body))
        return self._exchange

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # the protocol and httptools callbacks

    def data_received(self, data: bytes) -> None:
        ex = self._exchange
        if ex is None or self._parser is None:  # bytes nobody asked for: this connection is unusable
            self.close()
            return
        ex.started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            self.close()
            if not ex.future.done():
                ex.future.set_exception(UpstreamError(f"invalid HTTP answer: {e}"))

    def eof_received(self) -> bool:
        self.closed = True
        return False  # let the transport close

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._exchange is not None
        self._exchange.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        assert self._exchange is not None
        self._exchange.chunks.append(body)

    def on_message_complete(self) -> None:
        ex, parser = self._exchange, self._parser
        assert ex is not None and parser is not None
        ex.keep_alive = parser.should_keep_alive()
        self._exchange = self._parser = None
        if not ex.future.done():
            ex.future.set_result(Answer(parser.get_status_code(), ex.headers, b"".join(ex.chunks)))


class HttpPool:
    """Keep-alive connections to the host of ``base_url`` (http or https)."""

    def __init__(self, base_url: str, limit: int = 64) -> None:
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"predictor URL {base_url!r}: expected http(s)://host[:port]")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._authority = parts.netloc.encode("idna")
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limit)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self._authority,
                 f"Content-Length: {len(body)}".encode()]  # fmt: skip
        lines += [f"{k}: {v}".encode("latin-1") for k, v in (headers or {}).items()]
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        async with self._slots:
            conn = await self._connection()
            try:
                return await self._exchange(conn, head, body)
            except Unanswered:
                if not conn.reused:
                    raise
            # the server closed a connection we had kept idle and answered nothing: once more
            return await self._exchange(await self._connection(fresh=True), head, body)

    async def _connection(self, fresh: bool = False) -> _Connection:
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Connection, self.host, self.port, ssl=self._ssl)
        except OSError as e:
            raise Unanswered(f"cannot connect to {self.host}:{self.port}: {e}") from e
        return conn

    async def _exchange(self, conn: _Connection, head: bytes, body: bytes) -> Answer:
        keep = False
        try:
            exchange = conn.send(head, body, asyncio.get_running_loop().create_future())
            answer = await exchange.future
            keep = exchange.keep_alive
        finally:  # an error or a cancellation (the caller's deadline) leaves the connection unusable
            if keep and not conn.closed:
                self._idle.append(conn)
            else:
                conn.close()
        return answer

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
