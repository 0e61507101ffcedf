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
from recsys.steps.sync import USER_CHANNELS, open_online_store
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
    view = chain.store.user_view(user, USER_CHANNELS, b.version)
    history, seen = [i for i, _ in view.lists["history"]], {i for i, _ in view.lists["seen"]}
    ctx = b.chain.context(history, seen, b.industries.get(user))
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


class BundleRanker:
    """The predictor's scoring in process (the bundle's ONNX ranker): the real predictor over
    HTTP is compared in test_transformer.py; here the chain itself is."""

    def __init__(self, bundle: Path) -> None:
        from recsys.ranking.model import load_ranker

        self.ranker, self.version = load_ranker(bundle / "ranker"), bundle.name

    async def score(self, X: Any, schema_hash: str, shared: int = 0, request_id: str = "") -> Any:
        assert schema_hash == self.ranker.schema_hash  # the whole input's hash travels with it
        return self.ranker.score(X), self.version

    async def close(self) -> None:
        pass


def test_online_chain_equals_the_offline_chain_on_a_trained_bundle(
    served_bundle: Path, private_redis: RedisServer
) -> None:
    import asyncio

    from inference.chain import Request
    from recsys.recommend import BundleRecommender

    offline = BundleRecommender(served_bundle)
    experiments = Experiments.single()
    users = sorted(offline.user_ids)[::7] + ["never-seen-user"]

    async def online() -> dict[str, Any]:
        store = open_online_store(private_redis.url, None, timeout_s=0.5)
        chain = Chain(Bundle(served_bundle), store, {"champion": BundleRanker(served_bundle)},
                      timeouts=Timeouts(channel=1.0, request=5.0))  # fmt: skip
        try:
            return {u: await chain.recommend(Request(u, 10), experiments.assign(u)) for u in users}
        finally:
            await chain.close()
            store.close()

    answers = asyncio.run(online())
    seen = offline.states.seen
    for user in users:
        got, expected = answers[user], offline.recommend(user, 10)
        assert got.degrade_level == 0, (user, got.reasons)
        assert got.items == [r.item_id for r in expected], user
        assert got.scores == [r.score for r in expected]
        assert not set(got.items) & seen.get(user, set())  # the whole seen set, no cap
