"""``recsys serve`` as a user runs it: both servers up on the champion, answers shown, stopped."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from serving_helpers import RedisServer, free_port, metric, wait_ready


def serve(data_dir: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recsys", "serve", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ},
    )  # fmt: skip


def ports() -> list[str]:
    names = ("--http-port", "--grpc-port", "--predictor-http-port", "--predictor-grpc-port")
    return [arg for name in names for arg in (name, str(free_port()))]


def test_serve_once_shows_recommendations_and_stops(served_data: Path, private_redis: RedisServer) -> None:
    proc = serve(served_data, *ports(), "--store", private_redis.url, "--try-users", "u000001,new-visitor",
                 "--k", "3", "--once", "--poll-seconds", "0")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "ready." in out and "/recommend?user_id=u000001" in out and "/v2/models/recsys/infer" in out
    for user in ("u000001", "new-visitor"):
        section = out.split(f"user {user}:", 1)[1].split("\nuser ", 1)[0]
        assert "degrade level 0" in section
        assert [line.split()[0] for line in section.splitlines()[1:4]] == ["1.", "2.", "3."]
    # both servers were stopped: their logs end with the shutdown
    for name in ("transformer", "predictor"):
        assert "Stopping the model server" in (served_data / "logs" / "serve" / f"{name}.log").read_text()


def test_serve_without_a_trained_model_is_one_line(tmp_path: Path) -> None:
    proc = serve(tmp_path, *ports(), "--once", timeout=60)
    assert (
        proc.returncode == 2 and proc.stderr.count("\n") == 1 and "recsys pipeline run --local" in proc.stderr
    )


def test_serve_port_in_use_names_the_flag(served_data: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = serve(served_data, "--http-port", str(port), "--once", timeout=60)
    assert proc.returncode == 2 and f"--http-port {port} is in use" in proc.stderr


def test_transformer_workers_share_the_port_the_metrics_and_the_exposure_log(
    served_data: Path, private_redis: RedisServer, tmp_path: Path
) -> None:
    """``--transformer-workers 2``: KServe's --workers spawns two REST processes, each building
    its own model. Connections opened at once split evenly over them (balanced accept), both
    answer, /metrics adds both up, and SIGTERM loses no exposure record."""
    args = ports()
    url = f"127.0.0.1:{args[1]}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recsys", "serve", "--data-dir", str(served_data), *args,
             "--store", private_redis.url, "--poll-seconds", "0", "--transformer-workers", "2"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ},
        )  # fmt: skip
    run_id = uuid.uuid4().hex[:8]
    sent = [f"{run_id}-{n}" for n in range(32)]
    try:
        wait_ready(proc, url, log, timeout=180)
        # ready means one worker answers: wait until both accept (each reports its count from then)
        deadline = time.monotonic() + 60
        while len(_worker_connections(url, include_idle=True)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        before = _answered(url)
        time.sleep(0.3)  # the probes' connections are closed on the server side too
        # 16 keep-alive connections opened at once, as a load balancer or wrk does: left to the
        # kernel, one worker would take most of them; 2 requests each
        open_during: list[list[float]] = []
        levels = _batch(url, sent, while_open=lambda: open_during.append(_worker_connections(url)))
        assert levels == [0] * len(sent)
        # the 16 and the /metrics connection itself, 8 and 9 (or 8 and 8 plus a probe's late close)
        assert len(open_during[0]) == 2 and max(open_during[0]) - min(open_during[0]) <= 1
        assert sum(open_during[0]) in (17, 18), open_during
        time.sleep(0.5)  # the exposure writers flush when their queue runs empty
        with pytest.raises(urllib.error.HTTPError) as bad:
            _ask(http.client.HTTPConnection(url, timeout=30), "bad", k=0)
        assert bad.value.code == 400
        assert _answered(url) - before == len(sent)  # both workers' counts, whichever one answers
        assert metric(url, "recommendation_requests_total", status="invalid_input", variant="") >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    written = _exposed(served_data, run_id)
    assert len(written) == 2, f"one worker answered all {len(sent)} requests: {sorted(written)}"
    per_worker = sorted(map(len, written.values()))
    assert per_worker[1] - per_worker[0] <= 4, per_worker  # 8/8 connections (9/7 at worst)
    assert all(re.fullmatch(r"exposures-\d{4}-\d\d-\d\d-\d+\.jsonl", name) for name in written)
    assert sorted(i for ids in written.values() for i in ids) == sorted(sent)  # each once


def _exposed(data_dir: Path, run_id: str) -> dict[str, list[str]]:
    """Exposure file -> the request ids of this run it holds."""
    out: dict[str, list[str]] = {}
    for path in (data_dir / "exposures").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            request_id = json.loads(line)["request_id"]
            if request_id.startswith(run_id):
                out.setdefault(path.name, []).append(request_id)
    return out


def _answered(url: str) -> float:
    """recommendation_requests_total{status="ok"} summed over the variants."""
    body = urllib.request.urlopen(f"http://{url}/metrics", timeout=10).read().decode()
    found = re.findall(r'^recommendation_requests_total\{status="ok",[^}]*\} (\S+)$', body, re.M)
    return sum(map(float, found))


def _worker_connections(url: str, include_idle: bool = False) -> list[float]:
    """recommendation_worker_connections of each accepting worker (one series per pid), those
    with no connection only if ``include_idle``."""
    body = urllib.request.urlopen(f"http://{url}/metrics", timeout=10).read().decode()
    series = re.findall(r'^recommendation_worker_connections\{pid="\d+",port="\d+"\} (\S+)$', body, re.M)
    return [float(v) for v in series if include_idle or float(v) > 0]


def _batch(
    url: str, ids: list[str], connections: int = 16, while_open: Callable[[], object] | None = None
) -> list[int]:
    """``ids`` sent over ``connections`` keep-alive connections, all opened before any request;
    ``while_open`` is called once all have answered, before they close."""
    conns = [http.client.HTTPConnection(url, timeout=30) for _ in range(connections)]
    for conn in conns:
        conn.connect()
    try:
        with ThreadPoolExecutor(connections) as pool:
            chunks = pool.map(lambda n: [_ask(conns[n], i) for i in ids[n::connections]], range(connections))
            levels = list(chunks)
        if while_open is not None:
            while_open()
    finally:
        for conn in conns:
            conn.close()
    return [level for n in range(len(ids)) for level in [levels[n % connections][n // connections]]]


def _ask(conn: http.client.HTTPConnection, request_id: str, k: int = 5) -> int:
    """One v2 JSON request; its degrade level (HTTPError on a 4xx/5xx)."""
    body = {
        "id": request_id,
        "inputs": [
            {"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["u000001"]},
            {"name": "k", "shape": [1], "datatype": "INT32", "data": [k]},
        ],
    }
    conn.request("POST", "/v2/models/recsys/infer", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = resp.read()
    if resp.status != 200:
        raise urllib.error.HTTPError(conn.host, resp.status, payload.decode(), resp.headers, None)
    answer = json.loads(payload)
    return int(next(o for o in answer["outputs"] if o["name"] == "degrade_level")["data"][0])


def _pid_of(module: str, port: int) -> int:
    """The process running ``python -m module`` on ``--http_port port``."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if module.encode() in argv and str(port).encode() in argv and b"--http_port" in argv:
            return int(entry.name)
    raise AssertionError(f"no {module} on port {port}")


def test_a_killed_predictor_is_restarted_while_the_transformer_keeps_answering(
    served_data: Path, private_redis: RedisServer, tmp_path: Path
) -> None:
    """The drill of docs/SOP.md: the predictor is killed (-9) under traffic. Not one request
    fails: the transformer answers in recall order (level 2) meanwhile; ``recsys serve`` reports
    the crash with the predictor's own lines, restarts it, and answers are level 0 again."""
    args = ports()
    url, predictor_port = f"127.0.0.1:{args[1]}", int(args[5])
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recsys", "serve", "--data-dir", str(served_data), *args,
             "--store", private_redis.url, "--poll-seconds", "0"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ},
        )  # fmt: skip
    answers: list[tuple[float, int]] = []
    errors: list[BaseException] = []
    stop_traffic = False

    def traffic(n: int) -> None:
        conn = http.client.HTTPConnection(url, timeout=30)
        while not stop_traffic:
            try:
                answers.append((time.monotonic(), _ask(conn, f"drill-{n}")))
            except BaseException as e:  # noqa: BLE001 - any failure fails the test below
                errors.append(e)
                conn = http.client.HTTPConnection(url, timeout=30)

    try:
        wait_ready(proc, url, log, timeout=180)
        with ThreadPoolExecutor(4) as pool:
            running = [pool.submit(traffic, n) for n in range(4)]
            time.sleep(1.0)
            victim = _pid_of("inference.predictor_main", predictor_port)
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            deadline = killed + 60
            while "is ready again after restart 1" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            back = time.monotonic()
            deadline = back + 15  # the transformer's circuit finds the predictor back by itself
            while (
                not any(t > back and level == 0 for t, level in answers[-8:]) and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            recovered = time.monotonic()
            stop_traffic = True
            for future in running:
                future.result()
        output = log.read_text()
        assert not errors, errors[:3]
        assert "the predictor exited with signal SIGKILL" in output, output[-3000:]
        assert "restarting the predictor in 1 s (crash 1 of at most 5 in a row)" in output
        assert "the predictor is ready again after restart 1" in output, output[-3000:]
        # the lines quoted are the killed predictor's own (its start), not the transformer's
        quoted = output.split("its last lines", 1)[1].split("serve: restarting", 1)[0]
        assert "predictor" in quoted and "transformer" not in quoted.replace(str(log), "")
        levels = [level for t, level in answers if t > killed]
        assert 2 in levels and max(levels) <= 2, sorted(set(levels))
        assert any(t > back and level == 0 for t, level in answers), recovered - back
        assert _pid_of("inference.predictor_main", predictor_port) != victim
    finally:
        stop_traffic = True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
