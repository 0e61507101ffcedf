"""inference/http_pool.py against a real asyncio HTTP server on loopback that misbehaves on cue."""

from __future__ import annotations

import asyncio
from asyncio import StreamReader as Reader
from asyncio import StreamWriter as Writer
from collections.abc import Awaitable, Callable

import pytest

from inference.http_pool import HttpPool, Unanswered, UpstreamError

Handler = Callable[[Reader, Writer, bytes, bytes], Awaitable[bool]]


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nX-Seen: yes\r\n{extra}\r\n".encode() + body


class Upstream:
    """Counts connections and requests; ``handler`` answers one request and says whether to
    keep the connection open."""

    def __init__(self, handler: Handler) -> None:
        self.handler, self.connections, self.requests = handler, 0, []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Upstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: Reader, writer: Writer) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                if not await self.handler(reader, writer, head, body):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


async def echo(reader: Reader, writer: Writer, head: bytes, body: bytes) -> bool:
    writer.write(ok(body[::-1]))
    await writer.drain()
    return True


def test_sends_head_and_body_and_reuses_one_connection() -> None:
    async def main() -> None:
        async with Upstream(echo) as up:
            pool = HttpPool(up.url)
            for i in range(5):
                answer = await pool.request("POST", "/v2/x/infer", f"body-{i}".encode(), {"A-Header": "1"})
                assert (answer.status, answer.body, answer.headers["x-seen"]) == (
                    200,
                    f"body-{i}".encode()[::-1],
                    "yes",
                )
            assert up.connections == 1
            head = up.requests[0][0].decode()
            assert head.startswith("POST /v2/x/infer HTTP/1.1\r\n") and "A-Header: 1" in head
            assert f"Host: {up.url.split('//')[1]}" in head
            pool.close()

    asyncio.run(main())


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error() -> None:
    served: set[Writer] = set()

    async def once(reader: Reader, writer: Writer, head: bytes, body: bytes) -> bool:
        if writer in served:  # closes as the next request arrives: the keep-alive race, made certain
            return False
        served.add(writer)
        writer.write(ok(b"fine"))
        await writer.drain()
        return True

    async def main() -> None:
        async with Upstream(once) as up:
            pool = HttpPool(up.url)
            for _ in range(3):
                assert (await pool.request("GET", "/")).body == b"fine"
            # each later request went out on the kept connection, was dropped, and went again
            assert up.connections == 3 and len(up.requests) == 5

    asyncio.run(main())


def test_connection_close_and_chunked_answers() -> None:
    async def chunked(reader: Reader, writer: Writer, head: bytes, body: bytes) -> bool:
        writer.write(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                     b"4\r\nbusy\r\n6\r\n, busy\r\n0\r\n\r\n")  # fmt: skip
        await writer.drain()
        await asyncio.sleep(0.05)  # keep it open: the client must close because it was told to
        return True

    async def main() -> None:
        async with Upstream(chunked) as up:
            pool = HttpPool(up.url)
            for _ in range(2):
                answer = await pool.request("GET", "/")
                assert (answer.status, answer.body) == (503, b"busy, busy")
            assert up.connections == 2

    asyncio.run(main())


def test_an_answer_cut_short_on_a_reused_connection_is_an_error_and_not_sent_again() -> None:
    async def cut(reader: Reader, writer: Writer, head: bytes, body: bytes) -> bool:
        if body == b"first":
            writer.write(ok(b"1"))
            await writer.drain()
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        return False

    async def main() -> None:
        async with Upstream(cut) as up:
            pool = HttpPool(up.url)
            await pool.request("POST", "/", b"first")
            with pytest.raises(UpstreamError) as e:
                await pool.request("POST", "/", b"second")
            assert not isinstance(e.value, Unanswered)
            assert [b for _, b in up.requests] == [b"first", b"second"]

    asyncio.run(main())


def test_refused_connection_and_garbage_answer_are_upstream_errors() -> None:
    async def garbage(reader: Reader, writer: Writer, head: bytes, body: bytes) -> bool:
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        return True

    async def main() -> None:
        async with Upstream(garbage) as up:
            with pytest.raises(UpstreamError, match="invalid HTTP answer"):
                await HttpPool(up.url).request("GET", "/")
            url = up.url
        await asyncio.sleep(0.01)
        with pytest.raises(Unanswered, match="cannot connect"):
            await HttpPool(url).request("GET", "/")

    asyncio.run(main())


def test_a_cancelled_request_closes_its_connection_and_the_next_one_works() -> None:
    async def slow_first(reader: Reader, writer: Writer, head: bytes, body: bytes) -> bool:
        if body == b"slow":
            await asyncio.sleep(0.5)
        writer.write(ok(body))
        await writer.drain()
        return True

    async def main() -> None:
        async with Upstream(slow_first) as up:
            pool = HttpPool(up.url, limit=1)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await pool.request("POST", "/", b"slow")
            # the late answer to "slow" must not be read as the answer to "fast"
            assert (await pool.request("POST", "/", b"fast")).body == b"fast"
            assert up.connections == 2

    asyncio.run(main())


@pytest.mark.parametrize("url", ["ftp://host:1", "http://", "http:///path"])
def test_unusable_urls_are_refused_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match="expected http"):
        HttpPool(url)


def test_a_bad_predictor_host_names_its_flag() -> None:
    from inference.transformer_main import _rankers, parse
    from recsys.errors import ConfigError

    _, settings = parse(["--predictor_host", "127.0.0.1:1", "--predictor_hosts", "b=ftp://x:1"])
    with pytest.raises(ConfigError, match=r"--predictor_hosts: predictor URL 'ftp://x:1': expected http"):
        _rankers(settings)
