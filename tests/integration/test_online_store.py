"""Online store against the real Redis on loopback and SQLite (one suite, both backends), the
Redis-only guarantees (round trips, timeouts, failed publish) and the fallback to SQLite."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import redis
from conftest import REQUIRE_SERVICES, port_open

from recsys.errors import ConfigError, InvalidInput, StoreError, StoreUnavailable
from recsys.store import FallbackStore, FeatureBlock, OnlineStore, StoreSnapshot, open_store
from recsys.store.cache import ItemVectorCache

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
ODD_IDS = ["", " ", "a:b", "i:1", "*", "[x]?", "ü", "😀", "x\ny", "nul\x00byte", "a" * 1000, "k%20"]

StoreFactory = Callable[..., OnlineStore]


def _need_redis() -> None:
    if port_open(REDIS_HOST, REDIS_PORT):
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"Redis on {REDIS_HOST}:{REDIS_PORT} is not reachable (RECSYS_REQUIRE_SERVICES=1)")
    pytest.skip(f"Redis on {REDIS_HOST}:{REDIS_PORT} is not reachable")


@pytest.fixture(params=["redis", "sqlite"])
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores on one location; several instances stand for several serving processes."""
    opened: list[OnlineStore] = []
    if request.param == "redis":
        _need_redis()
        url, base = REDIS_URL, {"namespace": f"test-{uuid.uuid4().hex[:12]}"}
    else:
        url, base = f"sqlite:///{tmp_path / 'store.db'}", {}

    def factory(**options: Any) -> OnlineStore:
        store = open_store(url, **{**base, **options})
        opened.append(store)
        return store

    yield factory
    if request.param == "redis":
        factory().purge()  # type: ignore[attr-defined]
        assert not redis.Redis.from_url(REDIS_URL).keys(f"{base['namespace']}:*")
    for store in opened:
        store.close()


@pytest.fixture
def store(open_backend: StoreFactory) -> OnlineStore:
    return open_backend(keep_versions=0)


@pytest.fixture
def redis_store() -> Iterator[Any]:
    _need_redis()
    store = open_store(REDIS_URL, namespace=f"test-{uuid.uuid4().hex[:12]}", keep_versions=0)
    yield store
    store.purge()  # type: ignore[attr-defined]
    store.close()


def make_snapshot(
    version: str,
    *,
    users: int = 20,
    items: int = 400,
    features: int = 64,
    fill: float | None = None,
    seed: int = 0,
    item_ids: list[str] | None = None,
) -> StoreSnapshot:
    rng = np.random.default_rng(seed)
    ids = item_ids if item_ids is not None else [f"i{k}" for k in range(items)]

    def values(n: int) -> np.ndarray:
        if fill is not None:
            return np.full((n, features), fill, dtype=np.float32)
        return rng.standard_normal((n, features)).astype(np.float32)

    return StoreSnapshot(
        version=version,
        blocks={
            "user": FeatureBlock(
                "user", [f"u{k}" for k in range(users)], [f"uf{j}" for j in range(features)], values(users)
            ),
            "item": FeatureBlock("item", ids, [f"if{j}" for j in range(features)], values(len(ids))),
        },
        recall={
            "itemcf": {ids[0]: [(ids[k], 1.0 / k) for k in range(1, 6)], ids[1]: [(ids[0], 0.5)]},
            "popular": {"cat-1": [(i, float(len(ids) - k)) for k, i in enumerate(ids[:100])], "empty": []},
        },
        meta={"schema_hash": f"h-{version}", "created_at": "2026-03-05T00:00:00"},
    )


# -- the shared suite --------------------------------------------------------------------------------


def test_publish_then_lookup_round_trips_values(store: OnlineStore) -> None:
    snap = make_snapshot("v1", seed=1)
    store.publish(snap)
    users, items = snap.blocks["user"], snap.blocks["item"]
    wanted = ["i7", "missing-1", "i0", "i7", "missing-2", "i399"]
    got = store.lookup("u3", wanted)
    assert got.version == "v1" and got.served_by == store.name
    assert got.user is not None and got.user.dtype == np.float32
    np.testing.assert_array_equal(got.user, users.values[3])
    assert got.items.dtype == np.float32 and got.items.shape == (6, 64)
    assert got.found.tolist() == [True, False, True, True, False, True]
    for row, item in enumerate(wanted):
        if got.found[row]:
            np.testing.assert_array_equal(got.items[row], items.values[items.ids.index(item)])
        else:
            assert np.isnan(got.items[row]).all()
    unknown = store.lookup("nobody", ["missing"])
    assert unknown.user is None and unknown.found.tolist() == [False] and unknown.items.shape == (1, 64)
    assert store.lookup("u0", []).items.shape == (0, 64)
    assert store.feature_names("item") == items.names and store.feature_names("user") == users.names
    assert store.meta() == snap.meta


def test_user_view_reads_the_vector_and_the_users_lists(store: OnlineStore) -> None:
    # the lists of the first item id: here one named like a user, as a history list is
    snap = make_snapshot("v1", seed=6, item_ids=["u3", *[f"i{k}" for k in range(40)]])
    store.publish(snap)
    view = store.user_view("u3", ("itemcf", "popular", "absent"), "v1")
    assert view.version == "v1" and view.served_by == store.name
    np.testing.assert_array_equal(view.user, snap.blocks["user"].values[3])
    got = view.lists["itemcf"]
    assert got == store.recall("itemcf", ["u3"])["u3"] != []  # scores stored as float32
    assert [i for i, _ in got] == [i for i, _ in snap.recall["itemcf"]["u3"]]
    assert view.lists["popular"] == store.recall("popular", ["u3"])["u3"] and view.lists["absent"] == []
    # a long list comes back whole: nothing is capped on the way
    long = make_snapshot("v2", seed=6, item_ids=["u3", *[f"i{k}" for k in range(40)]])
    long.recall["seen"] = {"u3": [(f"x{n}", 0.0) for n in range(5000)]}
    store.publish(long, activate=False)
    assert len(store.user_view("u3", ("seen",), "v2").lists["seen"]) == 5000
    nobody = store.user_view("nobody", ("itemcf",), "v1")
    assert nobody.user is None and nobody.lists == {"itemcf": []}
    with pytest.raises(StoreError, match="not published"):
        store.user_view("u3", ("itemcf",), "v9")


def test_lookup_of_300_candidates_with_64_features(store: OnlineStore) -> None:
    snap = make_snapshot("v1", items=2000, features=64, seed=2)
    store.publish(snap)
    rng = np.random.default_rng(3)
    rows = rng.choice(2000, size=300, replace=False)
    got = store.lookup("u0", [f"i{k}" for k in rows])
    assert got.found.all() and got.items.shape == (300, 64)
    np.testing.assert_array_equal(got.items, snap.blocks["item"].values[rows])


def test_item_cache_answers_like_the_store_and_reads_only_new_items(
    store: OnlineStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = make_snapshot("v1", items=50, features=8, seed=4)
    store.publish(snap)
    cache = ItemVectorCache("v1", dim=8, max_items=32)
    asked: list[list[str]] = []
    lookup = store.lookup
    monkeypatch.setattr(store, "lookup", lambda u, ids, v=None: asked.append(list(ids)) or lookup(u, ids, v))
    requests = [
        ["i1", "i2", "nope", "i1"],  # a repeat and an item the store lacks
        ["i2", "nope", "i3"],  # only i3 is new
        [f"i{k}" for k in range(10, 40)],  # 30 new rows: 33 > max_items, the cache starts over
        ["i3", "i39", "i38"],
        [],
    ]
    for ids in requests:
        got, want = cache.lookup(store, "u2", ids), lookup("u2", ids, "v1")
        assert got.version == want.version == "v1" and got.served_by == want.served_by
        np.testing.assert_array_equal(got.user, want.user)
        assert got.found.tolist() == want.found.tolist() and got.items.shape == want.items.shape
        np.testing.assert_array_equal(got.items, want.items)  # NaN rows compare equal here
    assert asked[:2] == [["i1", "i2", "nope"], ["i3"]]
    assert asked[3] == ["i3"]  # forgotten when the cache started over; i38, i39 still cached
    assert asked[4] == [] and len(cache) == 31
    assert cache.misses == sum(map(len, asked)) and cache.hits == sum(map(len, requests)) - cache.misses
    # with the user's vector read already (serving's user_view), cached items need no store call
    view = store.user_view("u2", ("itemcf",), "v1")
    asked.clear()
    got = cache.lookup(store, "u2", ["i3", "i39"], view)
    assert asked == [] and got.served_by == view.served_by and got.found.all()
    np.testing.assert_array_equal(got.user, view.user)
    np.testing.assert_array_equal(got.items, lookup("u2", ["i3", "i39"], "v1").items)
    got = cache.lookup(store, "u2", ["i3", "i4"], view)
    assert asked == [["i4"]] and got.found.all()
    np.testing.assert_array_equal(got.user, view.user)


def test_item_cache_reads_everything_again_when_another_request_emptied_it(
    store: OnlineStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.publish(make_snapshot("v1", items=20, features=4, seed=6))
    cache = ItemVectorCache("v1", dim=4, max_items=4)
    cache.lookup(store, "u1", ["i1", "i2"])
    lookup = store.lookup

    def racing(user: str, ids: list[str], version: str | None = None) -> Any:
        if ids == ["i3"]:  # while this request reads i3, another one fills the cache past max
            cache.lookup(SimpleNamespace(lookup=lookup), "u2", ["i5", "i6", "i7"])  # type: ignore[arg-type]
        return lookup(user, ids, version)

    monkeypatch.setattr(store, "lookup", racing)
    got, want = cache.lookup(store, "u1", ["i1", "i3", "i2"]), lookup("u1", ["i1", "i3", "i2"], "v1")
    assert got.found.all()
    np.testing.assert_array_equal(got.items, want.items)


def test_recall_lists_keep_their_order(store: OnlineStore) -> None:
    snap = make_snapshot("v1")
    store.publish(snap)
    got = store.recall("itemcf", ["i0", "i1", "nope"])
    assert [i for i, _ in got["i0"]] == ["i1", "i2", "i3", "i4", "i5"]
    assert [s for _, s in got["i0"]] == pytest.approx([1.0, 1 / 2, 1 / 3, 1 / 4, 1 / 5], rel=1e-6)
    assert got["i1"] == [("i0", 0.5)] and got["nope"] == []
    popular = store.recall("popular", ["cat-1", "empty"])
    assert popular["cat-1"] == snap.recall["popular"]["cat-1"] and popular["empty"] == []
    assert store.recall("no-such-channel", ["i0"]) == {"i0": []}


def test_versions_activate_and_rollback(store: OnlineStore) -> None:
    assert store.versions() == [] and store.active_version() is None
    with pytest.raises(StoreError, match="no active version"):
        store.lookup("u0", ["i0"])
    store.publish(make_snapshot("v1", fill=1.0))
    store.publish(make_snapshot("v2", fill=2.0), activate=False)
    assert store.versions() == ["v2", "v1"] and store.active_version() == "v1"
    assert store.lookup("u0", ["i0"], version="v2").items[0, 0] == 2.0  # canary read of a pinned version
    store.activate("v2")
    assert store.active_version() == "v2" and store.lookup("u0", ["i0"]).items[0, 0] == 2.0
    store.activate("v1")  # rollback
    got = store.lookup("u0", ["i0"])
    assert (got.version, got.items[0, 0]) == ("v1", 1.0)
    assert store.meta("v2") == {"schema_hash": "h-v2", "created_at": "2026-03-05T00:00:00"}
    with pytest.raises(StoreError, match="v9"):
        store.activate("v9")
    with pytest.raises(StoreError, match="v9"):
        store.lookup("u0", ["i0"], version="v9")
    with pytest.raises(StoreError, match="already published"):
        store.publish(make_snapshot("v1"))
    assert store.active_version() == "v1"


def test_prune_keeps_the_newest_and_the_active(store: OnlineStore, open_backend: StoreFactory) -> None:
    for n in (1, 2, 3):
        store.publish(make_snapshot(f"v{n}", fill=float(n)))
    store.activate("v1")
    assert store.prune(1) == ["v2"]
    assert store.versions() == ["v3", "v1"] and store.active_version() == "v1"
    assert store.lookup("u0", ["i0"]).items[0, 0] == 1.0
    with pytest.raises(StoreError, match="v2"):
        store.lookup("u0", ["i0"], version="v2")
    assert store.prune(1) == []
    with pytest.raises(InvalidInput):
        store.prune(0)
    if store.name == "redis":
        client = store._client  # type: ignore[attr-defined]
        assert not list(client.scan_iter(match=f"{store.config.namespace}:v2:*"))  # type: ignore[attr-defined]
    auto = open_backend(keep_versions=2)  # same location, pruning after each publish
    auto.publish(make_snapshot("v4", fill=4.0))
    assert auto.versions() == ["v4", "v3"]


def test_publish_reports_progress(open_backend: StoreFactory) -> None:
    store = open_backend(batch_size=1000)
    calls: list[tuple[int, int]] = []
    store.publish(make_snapshot("v1", items=2500), progress=lambda done, total: calls.append((done, total)))
    total = 20 + 2500 + 2 + 2  # users + items + two recall channels of two keys each
    assert calls[-1] == (total, total) and all(t == total for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) > 1


def test_version_switch_is_atomic_for_concurrent_readers(open_backend: StoreFactory) -> None:
    writer = open_backend(batch_size=200, keep_versions=0)
    reader = open_backend()  # another process's view of the same store
    writer.publish(make_snapshot("v1", items=3000, fill=1.0))
    candidates = [f"i{k}" for k in range(0, 3000, 10)]
    seen: list[tuple[str, float, float]] = []
    errors: list[BaseException] = []
    published = threading.Event()

    def read() -> None:
        after = 0
        try:
            while after < 30:
                got = reader.lookup("u1", candidates)
                assert got.user is not None and got.found.all()
                values = np.concatenate([got.user, got.items.ravel()])
                seen.append((got.version, float(values.min()), float(values.max())))
                after += published.is_set()
        except BaseException as e:  # surfaced in the main thread
            errors.append(e)

    thread = threading.Thread(target=read)
    thread.start()
    writer.publish(make_snapshot("v2", items=3000, fill=2.0))
    published.set()
    thread.join(timeout=60)
    assert not errors, errors[0]
    expected = {"v1": 1.0, "v2": 2.0}
    mixed = [s for s in seen if s[1] != s[2] or s[1] != expected[s[0]]]
    assert not mixed, mixed[:3]
    assert seen[0][0] == "v1" and seen[-1][0] == "v2"
    assert len(seen) > 30


def test_odd_and_unicode_ids(store: OnlineStore) -> None:
    snap = make_snapshot("v1", item_ids=[*ODD_IDS, "plain"], features=61)
    snap.blocks["user"].ids[0] = "ユーザー:0"
    snap.recall["itemcf"]["😀:key"] = [("x\ny", 1.0), ("", 0.5), ("a:b", 0.25)]
    store.publish(snap)
    got = store.lookup("ユーザー:0", [*reversed(ODD_IDS), "ghost"])
    assert got.user is not None and got.found.tolist() == [True] * len(ODD_IDS) + [False]
    expected = snap.blocks["item"].values[: len(ODD_IDS)][::-1]
    np.testing.assert_array_equal(got.items[:-1], expected)
    assert store.recall("itemcf", ["😀:key"]) == {"😀:key": [("x\ny", 1.0), ("", 0.5), ("a:b", 0.25)]}
    bad = make_snapshot("v2", item_ids=[f"i{k}" for k in range(9)] + ["\ud800"])
    with pytest.raises(InvalidInput, match="item ids"):
        store.publish(bad)
    assert store.versions() == ["v1"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: setattr(s, "version", "a:b"), "version"),
        (lambda s: setattr(s.blocks["item"], "values", np.zeros((3, 3))), "shape"),
        (lambda s: s.blocks["item"].ids.__setitem__(1, "i0"), "not unique"),
        (lambda s: s.blocks.pop("item"), "no 'item'"),
        (lambda s: s.recall.__setitem__("bad channel", {}), "channel"),
        (lambda s: s.meta.__setitem__("when", object()), "JSON"),
    ],
)
def test_invalid_snapshots_are_refused_before_writing(
    store: OnlineStore, change: Callable[[StoreSnapshot], Any], match: str
) -> None:
    snap = make_snapshot("v1", items=10)
    change(snap)
    with pytest.raises(InvalidInput, match=match):
        store.publish(snap)
    assert store.versions() == []


READER = """
import sys, time
from recsys.store import open_store
store = open_store(sys.argv[1])
ids = [f"i{k}" for k in range(0, 3000, 10)]
seen, deadline = set(), time.monotonic() + 30
while "v2" not in seen and time.monotonic() < deadline:
    got = store.lookup("u1", ids)
    want = {"v1": 1.0, "v2": 2.0}[got.version]
    assert got.found.all() and (got.items == want).all() and (got.user == want).all(), got.version
    if not seen:
        print("reading", flush=True)
    seen.add(got.version)
print(",".join(sorted(seen)), flush=True)
"""


def test_sqlite_reader_processes_beside_one_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    writer = open_store(url, batch_size=200)
    writer.publish(make_snapshot("v1", items=3000, fill=1.0))
    readers = [
        subprocess.Popen([sys.executable, "-c", READER, url], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in readers:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "reading"
    writer.publish(make_snapshot("v2", items=3000, fill=2.0))
    for proc in readers:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.strip() == "v1,v2"
    writer.close()


# -- registry -------------------------------------------------------------------------------------


def test_open_store_validates_urls_and_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"memcached://h:1.*redis://, rediss://, sqlite://"):
        open_store("memcached://h:1")
    with pytest.raises(ConfigError, match="no-scheme"):
        open_store("no-scheme")
    with pytest.raises(ConfigError, match=r"redis://:\*\*\*@h:1/0"):
        open_store("redis://:secret@h:1/0", namespace="a:b")
    with pytest.raises(ConfigError, match="batch_siz"):
        open_store(f"sqlite:///{tmp_path / 's.db'}", batch_siz=3)
    with pytest.raises(ConfigError, match="memory"):
        open_store("sqlite:///:memory:")


# -- Redis only -----------------------------------------------------------------------------------


def _count_commands(monkeypatch: pytest.MonkeyPatch, store: Any) -> list[str]:
    sent: list[str] = []
    real = store._client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(store._client, "execute_command", counting)
    return sent


def test_redis_lookup_takes_at_most_two_round_trips(
    redis_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_store.publish(make_snapshot("v1"))
    cold = open_store(REDIS_URL, namespace=redis_store.config.namespace)
    sent = _count_commands(monkeypatch, cold)
    items = [f"i{k}" for k in range(300)]
    cold.lookup("u0", items)
    assert len(sent) <= 2, sent
    sent.clear()
    assert cold.lookup("u0", items).found.all()
    assert sent == ["MGET"]  # steady state: one round trip
    sent.clear()
    cold.recall("itemcf", ["i0", "i1"])
    assert sent == ["MGET"]
    sent.clear()
    assert cold.user_view("u0", ("itemcf",), "v1").user is not None
    assert sent == ["MGET"]  # the history and the user's vector: one round trip
    redis_store.publish(make_snapshot("v2", fill=2.0))
    redis_store.prune(1)  # the reader's cached v1 is gone: corrected within the same lookup
    sent.clear()
    got = cold.lookup("u0", items)
    assert got.version == "v2" and (got.items == 2.0).all() and len(sent) == 2
    cold.close()


def test_unreachable_redis_fails_fast_naming_the_url() -> None:
    store = open_store("redis://:secret@127.0.0.1:1/0")
    for call in (store.ping, lambda: store.lookup("u0", ["i0"]), lambda: store.publish(make_snapshot("v1"))):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as info:
            call()
        assert time.monotonic() - started < 5
        assert "redis://:***@127.0.0.1:1/0" in str(info.value) and "secret" not in str(info.value)
        assert info.value.status == 503


def test_failed_publish_leaves_the_previous_version_serving(
    redis_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_store.publish(make_snapshot("v1", fill=1.0))
    real_pipeline = redis_store._client.pipeline
    executed = 0

    def flaky_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = real_pipeline(*args, **kwargs)
        real_execute = pipe.execute

        def execute(*a: Any, **k: Any) -> Any:
            nonlocal executed
            executed += 1
            if executed == 2:  # the second batch: the connection drops
                raise redis.ConnectionError("connection reset by peer")
            return real_execute(*a, **k)

        pipe.execute = execute
        return pipe

    monkeypatch.setattr(redis_store._client, "pipeline", flaky_pipeline)
    ids = [*(f"i{k}" for k in range(400)), "ghost"]
    with pytest.raises(StoreUnavailable, match="v2"):
        redis_store.publish(make_snapshot("v2", fill=2.0, item_ids=ids))
    monkeypatch.undo()
    assert redis_store.active_version() == "v1" and redis_store.versions() == ["v1"]
    reader = open_store(REDIS_URL, namespace=redis_store.config.namespace)
    got = reader.lookup("u0", ["i0", "i399"])
    assert got.version == "v1" and (got.items == 1.0).all()
    # a retry replaces the leftovers of the failed attempt instead of mixing with them
    redis_store.publish(make_snapshot("v2", fill=2.0, items=400))
    assert redis_store.lookup("u0", ["ghost"]).found.tolist() == [False]
    reader.close()


# -- fallback ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    binary = shutil.which("redis-server")
    if binary is None:
        if REQUIRE_SERVICES:
            pytest.fail("redis-server is not installed (RECSYS_REQUIRE_SERVICES=1)")
        pytest.skip("redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, "private redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.kill()
        proc.wait()


def test_fallback_serves_from_sqlite_when_redis_dies(
    private_redis: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url, proc = private_redis
    primary = open_store(url, connect_timeout_s=0.5, socket_timeout_s=0.5)
    store = FallbackStore(primary, open_store(f"sqlite:///{tmp_path / 'fallback.db'}"))
    snap = make_snapshot("v1", seed=5)
    calls: list[tuple[int, int]] = []
    store.publish(snap, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1]
    assert store.lookup("u1", ["i1"]).served_by == "redis"
    proc.kill()
    proc.wait()
    started = time.monotonic()
    got = store.lookup("u1", ["i1", "nope"])
    assert got.served_by == "sqlite" and got.version == "v1" and got.found.tolist() == [True, False]
    np.testing.assert_array_equal(got.items[0], snap.blocks["item"].values[1])
    assert store.recall("itemcf", ["i1"]) == {"i1": [("i0", 0.5)]}
    view = store.user_view("u1", ("itemcf",), "v1")
    assert view.served_by == "sqlite" and view.user is not None
    store.ping()  # still serving, degraded
    assert time.monotonic() - started < 5
    with pytest.raises(StoreUnavailable):
        primary.ping()
    store.close()


def test_fallback_publish_switches_neither_when_the_primary_fails(tmp_path: Path) -> None:
    fallback = open_store(f"sqlite:///{tmp_path / 'fallback.db'}")
    store = FallbackStore(open_store("redis://127.0.0.1:1/0"), fallback)
    with pytest.raises(StoreUnavailable):
        store.publish(make_snapshot("v1"))
    assert fallback.versions() == ["v1"] and fallback.active_version() is None
    with pytest.raises(StoreError, match="no active version"):
        store.lookup("u0", ["i0"])
    store.close()


def test_an_empty_primary_counts_as_down_and_is_refilled_from_the_fallback(
    redis_store: Any, tmp_path: Path
) -> None:
    """Redis restarted empty (no persistence) answers, but without any version: reads go to
    the SQLite fallback, logged once, and a repair re-publishes and re-activates the fallback's
    active version, after which Redis answers again exactly as before."""
    url = REDIS_URL
    namespace = redis_store.config.namespace
    fallback = open_store(f"sqlite:///{tmp_path / 'fallback.db'}")
    repairs: list[str] = []
    store = FallbackStore(
        open_store(url, namespace=namespace),
        fallback,
        repairer=lambda: open_store(url, namespace=namespace),
        on_repair=repairs.append,
    )
    old, new = make_snapshot("v1", seed=1), make_snapshot("v2", seed=2)
    store.publish(old)
    store.publish(new)
    store.activate("v1")  # a rollback: the active version is not the newest
    before = store.lookup("u3", ["i1", "i7"], "v1")
    assert before.served_by == "redis"
    assert redis_store.purge() > 0  # the restart: every key gone
    got = store.lookup("u3", ["i1", "i7"], "v1")
    assert got.served_by == "sqlite"
    np.testing.assert_array_equal(got.items, before.items)
    assert store.user_view("u3", ("itemcf",), "v1").served_by == "sqlite"
    deadline = time.monotonic() + 10
    while not repairs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert repairs == ["repaired"]
    assert redis_store.active_version() == "v1" and redis_store.versions() == ["v1"]
    store.breaker.record_success()  # close the circuit the misses opened (it would reset in 2 s)
    again = store.lookup("u3", ["i1", "i7", "nope"], "v1")
    assert again.served_by == "redis" and again.found.tolist() == [True, True, False]
    np.testing.assert_array_equal(again.items[:2], before.items)
    assert redis_store.recall("itemcf", ["i0", "i1"], "v1") == fallback.recall("itemcf", ["i0", "i1"], "v1")
    assert redis_store.meta("v1") == fallback.meta("v1")
    # a primary with an active version is never overwritten: nothing to repair
    assert store.repair() is None
    store.close()


def test_the_repair_is_done_by_one_process_at_a_time(redis_store: Any) -> None:
    with (
        redis_store.exclusive("repair", ttl_s=5) as first,
        redis_store.exclusive("repair", ttl_s=5) as second,
    ):
        assert first and not second
    with redis_store.exclusive("repair", ttl_s=5) as after:
        assert after  # released by its holder
