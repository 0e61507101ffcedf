"""The transformer's recall step in process, on a bundle the local pipeline trained and the real
Redis it published to: channels run in the bounded pool within the channel timeout, a hung or
failing channel is cut off and counted, and the others are still fused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from inference.chain import Bundle, Chain, Timeouts
from inference.experiments import Experiments
from recsys.recall.base import RecallContext
from recsys.steps.sync import open_online_store
from tests.serving_helpers import RedisServer


class NoRanker:  # the recall step never calls the ranker
    async def close(self) -> None:
        pass


@pytest.fixture
def chain(served_bundle: Path, private_redis: RedisServer) -> Iterator[Chain]:
    store = open_online_store(private_redis.url, None, timeout_s=0.5)
    chain = Chain(Bundle(served_bundle), store, {"champion": NoRanker()},  # type: ignore[dict-item]
                  recall_threads=2, timeouts=Timeouts(channel=0.3, request=2.0))  # fmt: skip
    yield chain
    chain.pool.shutdown(wait=False, cancel_futures=True)
    chain.recall_pool.shutdown(wait=False, cancel_futures=True)
    store.close()


def counted(name: str, channel: str) -> float:
    return REGISTRY.get_sample_value(name, {"channel": channel}) or 0.0


def recall(chain: Chain) -> Any:
    b = chain.bundle
    user = sorted(b.industries)[0]
    variant = Experiments.single().assign(user)
    view = chain.store.user_view(user, "history", b.version)
    ctx = RecallContext(history=[i for i, _ in view.recall], user_industry=b.industries.get(user))
    return chain._recall_sync(b, user, ctx, variant)


def test_every_enabled_channel_contributes_within_the_timeout(chain: Chain) -> None:
    enabled = [c.name for c in chain.bundle.recall.channels if c.enabled]
    cands = recall(chain)
    assert len(enabled) >= 5 and len(cands) > 0
    assert set(cands.channels) == set(enabled)  # every channel answered in time


def test_a_hung_channel_is_cut_off_and_a_failing_one_counted(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = [c for c in chain.bundle.recall.channels if c.enabled]
    hung, failing = channels[0], channels[1]
    release = threading.Event()

    def hang(*args: Any) -> Any:
        release.wait(10)
        raise RuntimeError("released")

    def fail(*args: Any) -> Any:
        raise ValueError("broken channel")

    monkeypatch.setattr(hung, "recall_hits", hang)
    monkeypatch.setattr(failing, "recall_hits", fail)
    timeouts = counted("recommendation_recall_channel_timeouts_total", hung.name)
    errors = counted("recommendation_recall_channel_errors_total", failing.name)
    try:
        cands = recall(chain)
    finally:
        release.set()
    assert counted("recommendation_recall_channel_timeouts_total", hung.name) == timeouts + 1
    assert counted("recommendation_recall_channel_errors_total", failing.name) == errors + 1
    # the hung channel held one thread; the other thread ran all the rest
    assert set(cands.channels) == {c.name for c in channels[2:]}
    assert len(cands) > 0
