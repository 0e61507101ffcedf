"""Latency of one serving request's online-store lookup (1 user + N candidate items).

Publishes a random snapshot to each backend, then times ``lookup`` sequentially, one request at
a time as the transformer issues them, and prints p50/p95/p99 in milliseconds.

    .venv/bin/python benchmarks/store_bench.py [--redis-url URL] [--sqlite PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import StoreUnavailable
from recsys.store import FeatureBlock, OnlineStore, StoreSnapshot, open_store


def make_snapshot(args: argparse.Namespace, rng: np.random.Generator) -> StoreSnapshot:
    def block(entity: str, n: int) -> FeatureBlock:
        ids = [f"{entity[0]}{k}" for k in range(n)]
        names = [f"{entity}_f{j}" for j in range(args.features)]
        return FeatureBlock(entity, ids, names, rng.standard_normal((n, args.features), dtype=np.float32))

    return StoreSnapshot(
        version=f"bench-{int(time.time())}",
        blocks={"user": block("user", args.users), "item": block("item", args.items)},
        meta={"source": "store_bench"},
    )


def measure(store: OnlineStore, requests: list[tuple[str, list[str]]], warmup: int) -> dict[str, float]:
    for user, items in requests[:warmup]:
        store.lookup(user, items)
    latencies = np.empty(len(requests), dtype=np.float64)
    for k, (user, items) in enumerate(requests):
        started = time.perf_counter_ns()
        got = store.lookup(user, items)
        latencies[k] = (time.perf_counter_ns() - started) / 1e6
        if not got.found.all():
            raise SystemExit(f"{store.name}: lookup lost items; the benchmark is broken")
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(latencies.max()),
        "mean_ms": float(latencies.mean()),
    }


def run_backend(
    name: str,
    url: str,
    options: dict[str, Any],
    snapshot: StoreSnapshot,
    requests: list[tuple[str, list[str]]],
    warmup: int,
) -> dict[str, Any]:
    store = open_store(url, **options)
    try:
        started = time.perf_counter()
        store.publish(snapshot)
        publish_s = time.perf_counter() - started
        result = {"backend": name, "publish_s": round(publish_s, 3), **measure(store, requests, warmup)}
    finally:
        purge = getattr(store, "purge", None)
        if purge is not None:
            purge()  # the benchmark's namespace only
        store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--sqlite", type=Path, default=None, help="store file (default: a temp file)")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backends", default="redis,sqlite", help="comma-separated subset of redis,sqlite")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    snapshot = make_snapshot(args, rng)
    requests = [
        (f"u{rng.integers(args.users)}", [f"i{k}" for k in rng.choice(args.items, args.candidates, False)])
        for _ in range(args.requests)
    ]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_path = args.sqlite or Path(tmp) / "store.db"
        targets = {
            "redis": (args.redis_url, {"namespace": f"bench-{uuid.uuid4().hex[:8]}", "keep_versions": 0}),
            "sqlite": (f"sqlite:///{sqlite_path}", {"keep_versions": 0}),
        }
        for name in args.backends.split(","):
            url, options = targets[name.strip()]
            try:
                results.append(run_backend(name, url, options, snapshot, requests, args.warmup))
            except StoreUnavailable as e:
                results.append({"backend": name, "error": str(e)})
    setup = {k: getattr(args, k) for k in ("users", "items", "features", "candidates", "requests")}
    if args.json:
        print(json.dumps({"setup": setup, "pid": os.getpid(), "results": results}, indent=2))
        return
    print(" ".join(f"{k}={v}" for k, v in setup.items()))
    print(f"{'backend':<8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'publish s':>10}")
    for r in results:
        if "error" in r:
            print(f"{r['backend']:<8} {r['error']}")
            continue
        print(
            f"{r['backend']:<8} {r['p50_ms']:>8.3f} {r['p95_ms']:>8.3f} {r['p99_ms']:>8.3f} "
            f"{r['max_ms']:>8.3f} {r['publish_s']:>10.2f}"
        )


if __name__ == "__main__":
    main()
