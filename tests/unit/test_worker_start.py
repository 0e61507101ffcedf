"""A KServe worker process gets time to start before its health check may kill it.

The worker process is real (``multiprocessing`` with its pipe, as KServe's RESTServerProcess
uses); its start is a sleep before it answers pings, standing in for building the model.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from kserve.protocol.rest.multiprocess.server import RESTServerProcess

from inference import server


def _worker(conn: Connection, start_seconds: float) -> None:
    time.sleep(start_seconds)  # unpickling = building the model: no pong thread yet
    while True:
        conn.recv()
        conn.send(b"pong")


def _process(start_seconds: float) -> RESTServerProcess:
    process = RESTServerProcess.__new__(RESTServerProcess)
    process._parent_conn, process._child_conn = mp.Pipe()
    process._process = mp.get_context("spawn").Process(
        target=_worker, args=(process._child_conn, start_seconds), daemon=True
    )
    process._process.start()
    return process


def test_a_starting_worker_is_alive_without_blocking_then_checked_as_kserve_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert RESTServerProcess.is_alive is server._is_alive
    process = _process(start_seconds=1.5)
    try:
        started = time.monotonic()
        checks = 0
        while not getattr(process, "_recsys_started", False):
            before = time.monotonic()
            assert process.is_alive()
            assert time.monotonic() - before < 0.5  # KServe's own check waits up to 5 s, then kills
            assert time.monotonic() - started < 30
            checks += 1
            time.sleep(0.1)
        assert checks > 3
        assert process.is_alive(timeout=5)  # started: a real ping and pong from now on
        # a started worker that stops answering is unresponsive, as KServe means it
        monkeypatch.setattr(process._parent_conn, "poll", lambda timeout: False)
        assert not process.is_alive(timeout=0.1)
    finally:
        process._process.kill()


def test_a_worker_that_never_starts_is_given_up_after_the_start_budget(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(server, "WORKER_START_SECONDS", 0.5)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    process = _process(start_seconds=60)
    pid = process._process.pid
    # what a worker's live gauges leave in the multi-process directory (prometheus_client's names)
    live = [tmp_path / f"gauge_livesum_{pid}.db", tmp_path / f"gauge_liveall_{pid}.db"]
    kept = [tmp_path / f"counter_{pid}.db", tmp_path / "gauge_livesum_1.db"]
    for f in live + kept:
        f.write_bytes(b"")
    try:
        assert process.is_alive()
        assert all(f.exists() for f in live)
        time.sleep(0.7)
        assert not process.is_alive()
        # given up: marked dead for Prometheus, so /metrics stops adding its live gauges
        assert not any(f.exists() for f in live) and all(f.exists() for f in kept)
        process._process.kill()
        process._process.join(10)
        assert not process.is_alive()  # a dead process is dead, started or not
    finally:
        process._process.kill()
