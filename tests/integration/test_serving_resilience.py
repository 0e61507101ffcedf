"""Degradation, circuit breakers, timeouts, shadow mirroring, reload and the exposure log, with
every part a real process: a private Redis (paused with SIGSTOP to simulate an outage, resumed
with SIGCONT), two predictors (the champion and a shadow) and two transformers with different
time budgets. Each test leaves the processes running as it found them.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import pytest
from serving_helpers import RedisServer, free_port, infer, metric, start, stop, text, wait_ready

from recsys.steps.features import read_features

USER = "u000001"


@dataclass
class Stack:
    redis: RedisServer
    predictor: Popen[bytes]
    shadow: Popen[bytes]
    main: str  # transformer: request budget 2 s, predictor timeout 0.3 s, shadow at rate 1.0
    tight: str  # transformer: request budget 0.3 s, predictor timeout 2 s
    main_proc: Popen[bytes]
    exposures: Path
    request_ids: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def stack(served_data: Path, served_bundle: Path, private_redis: RedisServer) -> Iterator[Stack]:
    logs = served_data / "logs-resilience"
    ports = {name: free_port() for name in ("predictor", "shadow", "main", "tight")}
    url = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    exposures = served_data / "exposures-resilience"
    procs = {
        "predictor": start("inference.predictor_main", logs, served_data, ports["predictor"],
                           "--model_uri", str(served_bundle)),
        # the shadow serves the same bundle through native LightGBM: a real second ranker
        "shadow": start("inference.predictor_main", logs, served_data, ports["shadow"],
                        "--model_uri", str(served_bundle), "--runtime", "lightgbm"),
        "main": start("inference.transformer_main", logs, served_data, ports["main"],
                      "--predictor_host", url["predictor"], "--store_url", private_redis.url,
                      "--bundle", str(served_bundle), "--exposure_dir", str(exposures),
                      "--predictor_timeout_ms", "300", "--request_timeout_ms", "2000",
                      "--shadow_predictor_host", url["shadow"], "--shadow_sample_rate", "1.0",
                      "--shadow_max_in_flight", "2"),
        "tight": start("inference.transformer_main", logs, served_data, ports["tight"],
                       "--predictor_host", url["predictor"], "--store_url", private_redis.url,
                       "--exposure_dir", str(served_data / "exposures-tight"),
                       "--predictor_timeout_ms", "2000", "--request_timeout_ms", "300"),
    }  # fmt: skip
    try:
        for name, proc in procs.items():
            wait_ready(proc, url[name], logs / f"{proc.args[2]}-{ports[name]}.log")  # type: ignore[index]
        yield Stack(private_redis, procs["predictor"], procs["shadow"], url["main"], url["tight"],
                    procs["main"], exposures)  # fmt: skip
    finally:
        private_redis.resume()
        for proc in procs.values():
            stop(proc)


def ask(stack: Stack, url: str | None = None, user: str = USER) -> tuple[int, list[str], list[str]]:
    """(degrade level, items, channels) of one answered request; records its id for the log test."""
    request_id = f"r-{uuid.uuid4().hex[:12]}"
    target = url or stack.main
    result = infer(target, user, 10, request_id=request_id)
    if target == stack.main:
        stack.request_ids.append(request_id)
    level = int(result.get_response()["parameters"]["degrade_level"])
    return level, text(result.as_numpy("item_ids")), text(result.as_numpy("channels"))


def wait_for(predicate: object, timeout: float = 15.0, show: object = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached in {timeout} s" + (f": {show()}" if show else ""))  # type: ignore[operator]
        time.sleep(0.1)


def test_healthy_answers_are_level_0_and_mirrored_to_the_shadow(stack: Stack) -> None:
    for _ in range(6):
        level, items, _ = ask(stack)
        assert level == 0 and len(items) == 10
    wait_for(lambda: metric(stack.main, "recommendation_shadow_requests_total", result="ok") >= 1)
    mirrored = metric(stack.main, "recommendation_shadow_requests_total", result="ok")
    dropped = metric(stack.main, "recommendation_shadow_requests_total", result="dropped")
    assert mirrored + dropped >= 6  # sample rate 1.0: every ranking request was mirrored or dropped
    # the shadow serves the same model through another runtime: it agrees on every top 10
    count = metric(stack.main, "recommendation_shadow_topk_overlap_count")
    assert count == mirrored and metric(stack.main, "recommendation_shadow_topk_overlap_sum") == count
    # (a histogram with negative buckets exports no _sum): every correlation lies above 0.99
    assert metric(stack.main, "recommendation_shadow_rank_correlation_count") == count
    assert metric(stack.main, "recommendation_shadow_rank_correlation_bucket", le="0.99") == 0


def shadow_metrics(stack: Stack) -> dict[str, float]:
    return {
        r: metric(stack.main, "recommendation_shadow_requests_total", result=r)
        for r in ("ok", "dropped", "error")
    }


def test_stopped_shadow_never_delays_answers(stack: Stack) -> None:
    before = metric(stack.main, "recommendation_shadow_requests_total", result="dropped")
    stack.shadow.send_signal(19)  # SIGSTOP: the shadow hangs, mirrors time out after 0.3 s
    try:
        start = time.monotonic()
        for _ in range(8):
            level, _, _ = ask(stack)
            assert level == 0
        # 8 answers while mirrors hang: with 2 slots, the rest are dropped rather than queued
        assert time.monotonic() - start < 8 * 0.3
        assert metric(stack.main, "recommendation_shadow_requests_total", result="dropped") >= before + 4
        # the mirrors still in flight time out (0.3 s) and count as errors
        wait_for(
            lambda: metric(stack.main, "recommendation_shadow_requests_total", result="error") >= 1,
            show=lambda: shadow_metrics(stack),
        )
    finally:
        stack.shadow.send_signal(18)  # SIGCONT


def test_redis_outage_level_1_then_recovery(stack: Stack) -> None:
    assert ask(stack)[0] == 0
    stack.redis.pause()
    try:
        levels = [ask(stack)[0] for _ in range(8)]
        assert set(levels) == {1}, levels  # the SQLite fallback answers every request
        assert metric(stack.main, "recommendation_circuit_state", target="store") == 1  # open
        assert metric(stack.main, "recommendation_circuit_opened_total", target="store") >= 1
        assert metric(stack.main, "recommendation_degraded_total", level="1", reason="store_fallback") >= 8
        # the reads that opened the circuit were cut off by Redis's socket timeout
        assert metric(stack.main, "recommendation_timeouts_total", stage="store") >= 3
    finally:
        stack.redis.resume()
    # after the reset timeout one trial read finds Redis back and closes the circuit
    time.sleep(2.2)
    wait_for(lambda: ask(stack)[0] == 0)
    assert metric(stack.main, "recommendation_circuit_state", target="store") == 0


def test_redis_killed_and_restarted_empty_level_1_then_refilled(stack: Stack) -> None:
    """The drill of docs/SOP.md: Redis is killed under traffic and comes back empty (the chart
    runs it without persistence). No request fails and none falls below level 1: the SQLite
    fallback answers, also while the new Redis answers without any version, until the
    transformer re-publishes the active version into it; then level 0 within 10 s."""
    answers: list[tuple[float, int]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def traffic() -> None:
        while not done.is_set():
            try:
                answers.append((time.monotonic(), ask(stack)[0]))
            except BaseException as e:  # noqa: BLE001 - any failure fails the test below
                errors.append(e)

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        stack.redis.kill()
        time.sleep(1.5)
        stack.redis.start_empty()
        back = time.monotonic()
        wait_for(lambda: any(t > back and level == 0 for t, level in answers[-20:]), timeout=10.0,
                 show=lambda: answers[-5:])  # fmt: skip
        recovered = time.monotonic() - back
        time.sleep(1.0)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert not errors, errors[:3]
    levels = [level for _, level in answers]
    assert max(levels) <= 1 and levels.count(1) > 0, sorted(set(levels))
    assert recovered < 10
    assert all(level == 0 for t, level in answers if t > back + recovered + 0.5)  # and stays there
    assert metric(stack.main, "recommendation_store_repairs_total", outcome="repaired") + metric(
        stack.tight, "recommendation_store_repairs_total", outcome="repaired"
    ) >= 1  # fmt: skip


def test_predictor_hang_level_2_then_circuit_opens(stack: Stack) -> None:
    stack.predictor.send_signal(19)  # SIGSTOP: connections hang until the 0.3 s timeout
    try:
        levels = []
        for _ in range(5):
            level, items, _ = ask(stack)
            levels.append(level)
            assert len(items) == 10
        assert levels == [2] * 5
        assert metric(stack.main, "recommendation_timeouts_total", stage="predictor") >= 5
        # 5 failures opened the circuit: the next answers skip the predictor at once
        start = time.monotonic()
        assert ask(stack)[0] == 2
        assert time.monotonic() - start < 0.3
        assert (
            metric(stack.main, "recommendation_degraded_total", level="2", reason="predictor_circuit_open")
            >= 1
        )
        assert metric(stack.main, "recommendation_circuit_state", target="champion") == 1
    finally:
        stack.predictor.send_signal(18)
    time.sleep(2.2)
    wait_for(lambda: ask(stack)[0] == 0)


def test_request_deadline_level_3_popular_items(stack: Stack, served_bundle: Path) -> None:
    """The tight transformer's 0.3 s request budget runs out while the predictor hangs."""
    assert ask(stack, stack.tight)[0] == 0
    stack.predictor.send_signal(19)
    try:
        for _ in range(3):
            level, items, channels = ask(stack, stack.tight)
            assert level == 3 and len(items) == 10 and set(channels) == {"popular"}
        assert metric(stack.tight, "recommendation_timeouts_total", stage="request") >= 3
        assert metric(stack.tight, "recommendation_degraded_total", level="3", reason="timeout") >= 3
    finally:
        stack.predictor.send_signal(18)
    wait_for(lambda: ask(stack, stack.tight)[0] == 0)


def test_metrics_exposition(stack: Stack) -> None:
    body = urllib.request.urlopen(f"http://{stack.main}/metrics", timeout=10).read().decode()
    for name in ("recommendation_requests_total", "recommendation_latency_seconds_bucket",
                 "recommendation_recall_channel_seconds_bucket",
                 "recommendation_recall_channel_candidates_bucket",
                 "recommendation_exposed_items_total", "recommendation_thread_pool_queue_size",
                 "request_predict_seconds"):  # fmt: skip
        assert name in body, name
    assert 'recommendation_latency_seconds_bucket{le="0.025"' in body


def test_reload_under_traffic_swaps_without_a_failed_request(stack: Stack, served_bundle: Path) -> None:
    errors: list[BaseException] = []
    levels: list[int] = []
    done = threading.Event()

    def traffic() -> None:
        while not done.is_set():
            try:
                levels.append(ask(stack)[0])
            except BaseException as e:  # noqa: BLE001 - any failure fails the test below
                errors.append(e)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(0.5)
        for _ in range(2):
            req = urllib.request.Request(
                f"http://{stack.main}/v2/repository/models/recsys/load", method="POST"
            )
            with urllib.request.urlopen(req, timeout=60) as resp:
                assert resp.status == 200
        time.sleep(0.5)
    finally:
        done.set()
        thread.join()
    assert not errors and levels and set(levels) == {0}
    assert metric(stack.main, "recommendation_bundle_reloads_total", result="swapped") >= 2
    # answers still honour the bundle's category cap after the swap
    cats = read_features(served_bundle / "features")[2].set_index("item_id")["item_category_code"]
    items = ask(stack)[1]
    assert max(list(cats[items].value_counts())) <= 3


def test_exposure_log_has_every_answer_after_graceful_shutdown(stack: Stack) -> None:
    """Last: stops the main transformer. Every answered request, degraded ones included, has
    exactly one record, written by the time SIGTERM's graceful shutdown is over."""
    assert len(stack.request_ids) >= 30
    stop(stack.main_proc)
    records = [json.loads(line) for p in stack.exposures.glob("exposures-*.jsonl")
               for line in p.read_text().splitlines()]  # fmt: skip
    ids = [r["request_id"] for r in records]
    assert sorted(ids) == sorted(stack.request_ids)
    assert {r["degrade_level"] for r in records} >= {0, 1, 2}
