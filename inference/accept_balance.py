"""Worker processes that share a port take new connections in turn (``--workers N``).

KServe's multi-process REST server hands one listening socket to N processes and lets each
event loop accept from it. Every loop wakes on a new connection and the first one accepts all
that are queued, so a client with a few keep-alive connections (wrk with 8, a Knative
queue-proxy or an Envoy sidecar with a handful) lands unevenly: 7 and 1, 6 and 2. A worker is
one Python process bound by its GIL, so the one holding 7 connections saturates its core while
the other idles, and the tail latency follows the busier one (at 8 connections on 2 cores:
p95 ~33 ms with a 4/4 split, 40-48 ms with 5/3 to 7/1).

Here each worker accepts in a thread of its own, with a blocking ``accept`` (no wake-up of the
event loop), and only while it holds no more open connections than the least loaded live
worker; a small shared ledger (one slot per worker: pid, open connections) says who that is.
Connections then split evenly (a difference of at most one while they arrive together), as
Envoy's ``exact_balance`` or Node's round-robin cluster do. A worker waits for its turn at
most ``MAX_WAIT_S``: a peer stuck for longer must not stop the port from accepting.
"""

from __future__ import annotations

import asyncio
import fcntl
import mmap
import os
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SLOTS = 64
SLOT = struct.Struct("<ii")  # pid, open connections
POLL_S = 0.002
MAX_WAIT_S = 0.05


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ConnectionLedger:
    """Open connections per worker process, in a small file every worker maps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            with _locked(fd):
                if os.fstat(fd).st_size < SLOTS * SLOT.size:
                    os.ftruncate(fd, SLOTS * SLOT.size)
            self._map = mmap.mmap(fd, SLOTS * SLOT.size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._closed = False
        self.slot = self._claim(os.getpid())

    def _claim(self, pid: int) -> int:
        with _locked(self._fd):
            for i in range(SLOTS):
                owner, _ = SLOT.unpack_from(self._map, i * SLOT.size)
                if owner == pid or owner == 0 or not _alive(owner):
                    SLOT.pack_into(self._map, i * SLOT.size, pid, 0)
                    return i
        raise RuntimeError(f"connection ledger {self.path}: all {SLOTS} worker slots are taken")

    def counts(self) -> dict[int, int]:
        """{slot: open connections} of the workers in the ledger."""
        out = {}
        for i in range(SLOTS):
            owner, count = SLOT.unpack_from(self._map, i * SLOT.size)
            if owner:
                out[i] = count
        return out

    def add(self, delta: int) -> None:
        if self._closed:  # connections closed after the worker stopped accepting
            return
        with _locked(self._fd):
            pid, count = SLOT.unpack_from(self._map, self.slot * SLOT.size)
            SLOT.pack_into(self._map, self.slot * SLOT.size, pid, max(0, count + delta))

    def my_turn(self) -> bool:
        """No live worker holds fewer open connections than this one."""
        if self._closed:
            return True
        counts = self.counts()
        mine = counts.get(self.slot, 0)
        for i, count in counts.items():
            if count < mine:
                pid, _ = SLOT.unpack_from(self._map, i * SLOT.size)
                if _alive(pid):
                    return False
                self._release(i, pid)  # a dead worker's slot must not hold the others back
        return True

    def _release(self, i: int, pid: int) -> None:
        with _locked(self._fd):
            if SLOT.unpack_from(self._map, i * SLOT.size)[0] == pid:
                SLOT.pack_into(self._map, i * SLOT.size, 0, 0)

    def close(self) -> None:
        if self._closed:
            return
        self._release(self.slot, os.getpid())
        self._closed = True
        with _locked(self._fd):
            if not self.counts():  # the last worker out removes the file
                self.path.unlink(missing_ok=True)
        self._map.close()
        os.close(self._fd)


@contextmanager
def _locked(fd: int) -> Iterator[None]:
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def ledger_path(sock: socket.socket) -> Path:
    """One ledger per listening port of one server: the workers are siblings of one parent."""
    port = sock.getsockname()[1]
    return Path(tempfile.gettempdir()) / f"recsys-accept-{os.getppid()}-{port}"


class BalancedAcceptor:
    """What ``loop.create_server(sock=...)`` returns, as far as uvicorn uses it (``close``,
    ``wait_closed``, ``sockets``, ``is_serving``)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], asyncio.Protocol],
        sock: socket.socket,
        ssl: Any = None,
        on_change: Callable[[int, int], None] | None = None,
        backlog: int = 2048,
    ) -> None:
        self._loop, self._factory, self._sock, self._ssl = loop, protocol_factory, sock, ssl
        self._ledger = ConnectionLedger(ledger_path(sock))
        self._on_change = on_change or (lambda port, open_now: None)
        self._port = sock.getsockname()[1]
        self._open = 0
        self._serving = True
        self._tasks: set[asyncio.Task[None]] = set()
        # the listening socket's O_NONBLOCK is shared by every worker: all of them block in accept
        sock.setblocking(True)
        sock.listen(backlog)  # what create_server does; uvicorn only binds
        self._on_change(self._port, 0)  # this worker takes part from now on
        self._thread = threading.Thread(target=self._accept_loop, name="accept", daemon=True)
        self._thread.start()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,)

    def is_serving(self) -> bool:
        return self._serving

    def _accept_loop(self) -> None:
        while self._serving:
            waited = 0.0
            try:
                while waited < MAX_WAIT_S and not self._ledger.my_turn():
                    time.sleep(POLL_S)
                    waited += POLL_S
            except ValueError:  # the ledger was unmapped: this worker is shutting down
                return
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if not self._serving:
                    return
                time.sleep(POLL_S)  # e.g. EMFILE: the loop keeps serving what it has
                continue
            if not self._serving:  # accepted while this worker shuts down: the peer retries
                conn.close()
                return
            self._ledger.add(1)
            try:
                self._loop.call_soon_threadsafe(self._serve, conn)
            except RuntimeError:  # the loop is closed
                conn.close()
                return

    def _serve(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self._loop.create_task(self._connect(conn))
        self._tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket) -> None:
        made: list[asyncio.Protocol] = []
        try:
            await self._loop.connect_accepted_socket(lambda: self._counted(made), conn, ssl=self._ssl)
        except Exception:  # TLS handshake failed, peer gone: that connection only
            conn.close()
            if not made:  # connection_lost will not come to count it out
                self._ledger.add(-1)

    def _counted(self, made: list[asyncio.Protocol]) -> asyncio.Protocol:
        protocol = self._factory()
        lost = protocol.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            self._open -= 1
            self._on_change(self._port, self._open)
            self._ledger.add(-1)
            lost(exc)

        protocol.connection_lost = connection_lost  # type: ignore[method-assign]
        made.append(protocol)
        self._open += 1
        self._on_change(self._port, self._open)
        return protocol

    def close(self) -> None:
        self._serving = False

    async def wait_closed(self) -> None:
        self._ledger.close()


def balanced(
    loop_class: type[asyncio.AbstractEventLoop], on_change: Callable[[int, int], None] | None = None
) -> type:
    """``loop_class`` whose ``create_server(sock=<TCP socket>)`` accepts through a
    BalancedAcceptor; every other use of the loop is unchanged."""

    class BalancedLoop(loop_class):  # type: ignore[misc, valid-type]
        async def create_server(
            self, protocol_factory: Any, host: Any = None, port: Any = None, **kw: Any
        ) -> Any:
            sock = kw.get("sock")
            if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
                return await super().create_server(protocol_factory, host, port, **kw)
            return BalancedAcceptor(
                self, protocol_factory, sock, kw.get("ssl"), on_change, kw.get("backlog") or 100
            )

    BalancedLoop.__name__ = f"Balanced{loop_class.__name__}"
    return BalancedLoop


_on_change: list[Callable[[int, int], None] | None] = [None]


def install(on_change: Callable[[int, int], None] | None = None) -> None:
    """In a worker process, before uvicorn starts serving: uvicorn's loop choices (KServe's
    ``--event_loop``) build balanced loops. ``on_change(port, open connections)`` reports
    this worker's count (a gauge), 0 once it accepts."""
    from uvicorn import config

    _on_change[0] = on_change
    for name in ("auto", "uvloop", "asyncio"):
        config.LOOP_FACTORIES[name] = f"{__name__}:{name}_loop_factory"


def uvloop_loop_factory(use_subprocess: bool = False) -> Callable[[], asyncio.AbstractEventLoop]:
    import uvloop

    return balanced(uvloop.Loop, _on_change[0])


def asyncio_loop_factory(use_subprocess: bool = False) -> Callable[[], asyncio.AbstractEventLoop]:
    return balanced(asyncio.SelectorEventLoop, _on_change[0])


def auto_loop_factory(use_subprocess: bool = False) -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        return uvloop_loop_factory(use_subprocess)
    except ImportError:
        return asyncio_loop_factory(use_subprocess)
