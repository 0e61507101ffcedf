"""Circuit breaker transitions (fake clock) and the shadow ranking's agreement measures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from inference.shadow import rank_correlation, topk_overlap
from recsys.resilience import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_recovers_through_one_trial() -> None:
    clock, changes = Clock(), []
    b = CircuitBreaker("redis", failure_threshold=3, reset_timeout_s=5, clock=clock,
                       on_change=lambda name, state: changes.append((name, state)))  # fmt: skip
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert b.state == "closed"  # 2 < 3
    b.record_success()  # a success resets the count
    for _ in range(3):
        assert b.allow()
        b.record_failure()
    assert b.state == "open" and not b.allow()
    clock.now += 4.9
    assert not b.allow()
    clock.now += 0.2
    assert b.allow() and b.state == "half_open"
    assert not b.allow()  # one trial at a time
    b.record_failure()
    assert b.state == "open" and not b.allow()  # the trial failed: open for another period
    clock.now += 5.1
    assert b.allow()
    b.record_success()
    assert b.state == "closed" and b.allow() and b.allow()
    assert changes == [("redis", "open"), ("redis", "half_open"), ("redis", "open"),
                       ("redis", "half_open"), ("redis", "closed")]  # fmt: skip


def test_breaker_release_frees_an_abandoned_trial() -> None:
    clock = Clock()
    b = CircuitBreaker("p", failure_threshold=1, reset_timeout_s=1, clock=clock)
    b.record_failure()
    clock.now += 2
    assert b.allow() and not b.allow()
    b.release()
    assert b.allow()


def test_breaker_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0)


def test_topk_overlap_by_hand() -> None:
    served = np.array([0.9, 0.8, 0.7, 0.1, 0.0])
    shadow = np.array([0.9, 0.1, 0.8, 0.7, 0.0])  # top 3: items 0, 2, 3 vs served 0, 1, 2
    assert topk_overlap(served, shadow, 3) == pytest.approx(2 / 3)
    assert topk_overlap(served, served, 3) == 1.0
    assert topk_overlap(served, -served, 2) == 0.0


def test_rank_correlation_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=300)
    b = a + rng.normal(scale=0.5, size=300)
    assert rank_correlation(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert rank_correlation(a[:1], b[:1]) == 1.0
