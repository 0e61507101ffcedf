"""Step sync_store: publish a bundle to the online store.

A bundle is ``<data_dir>/bundles/<version>/`` (the version is the run id). Its user and item
vectors, the recall channels' lists and the users' recent histories are published under the
version; the version becomes active when its model is the champion. ``bundles/LATEST.json``
names the active one, which ``--sync-only`` / ``recsys store sync`` re-publish without
recomputing anything (e.g. after a Redis restart).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from recsys.chain.users import UserStates
from recsys.errors import PipelineError, StoreError
from recsys.redaction import redact
from recsys.resilience import CircuitBreaker
from recsys.steps.common import HISTORIES_FILE, run_record_path, utc_now, write_json
from recsys.steps.features import read_features
from recsys.store import FallbackStore, FeatureBlock, OnlineStore, StoreSnapshot, open_store

LATEST = "LATEST.json"


def bundles_dir(data_dir: Path) -> Path:
    return data_dir / "bundles"


def latest_bundle(data_dir: Path) -> Path:
    pointer = bundles_dir(data_dir) / LATEST
    if not pointer.exists():
        raise PipelineError(
            f"no published bundle in {bundles_dir(data_dir)}: run `recsys pipeline run --local` first"
        )
    bundle = Path(json.loads(pointer.read_text())["path"])
    if not (bundle / "features").exists():
        raise PipelineError(f"bundle {bundle} named in {pointer} is missing or incomplete")
    return bundle


def open_online_store(
    url: str,
    fallback_url: str | None,
    *,
    timeout_s: float | None = None,
    breaker: CircuitBreaker | None = None,
    on_unavailable: Callable[[StoreError], None] | None = None,
    repair: bool = False,
    on_repair: Callable[[str], None] | None = None,
) -> OnlineStore:
    """The primary store, backed by a SQLite fallback when one is configured.

    ``timeout_s`` (serving) bounds a Redis primary's connect and read time and turns off its
    retry: a request has a fallback to go to and no time to wait for a second try. ``repair``
    (serving): a primary found empty is refilled from the fallback, through a connection of its
    own with the default timeouts (``FallbackStore.repair``).
    """
    options: dict[str, Any] = {}
    if timeout_s is not None and url.startswith(("redis://", "rediss://")):
        options = {"connect_timeout_s": timeout_s, "socket_timeout_s": timeout_s, "retries": 0}
    primary = open_store(url, **options)
    if not fallback_url:
        return primary
    repairer = (lambda: open_store(url)) if repair else None
    return FallbackStore(primary, open_store(fallback_url), breaker, on_unavailable, repairer, on_repair)


HISTORY_CHANNEL = "history"  # each user's newest positives, newest first: recall's input
SEEN_CHANNEL = "seen"  # each user's seen items under the bundle's policy, whole past: excluded
USER_CHANNELS = (HISTORY_CHANNEL, SEEN_CHANNEL)


def _recall_lists(bundle: Path) -> dict[str, dict[str, list[tuple[str, float]]]]:
    lists: dict[str, dict[str, list[tuple[str, float]]]] = {}
    if (bundle / "recall").exists():
        from recsys.recall.engine import RecallEngine

        lists.update(RecallEngine.load(bundle / "recall").to_lists())
    if (bundle / HISTORIES_FILE).exists():
        states = UserStates.load(bundle / HISTORIES_FILE)
        lists[HISTORY_CHANNEL] = {
            u: [(i, float(-n)) for n, i in enumerate(items)] for u, items in states.history.items()
        }
        lists[SEEN_CHANNEL] = {u: [(i, 0.0) for i in sorted(items)] for u, items in states.seen.items()}
    return lists


def publish_bundle(
    bundle: Path, store_url: str, fallback_url: str | None, *, progress: bool = True, activate: bool = True
) -> dict[str, Any]:
    registry, users, items, meta = read_features(bundle / "features")
    version = bundle.name
    user_cols, item_cols = registry.vector_columns("user"), registry.vector_columns("item")
    snapshot = StoreSnapshot(
        version=version,
        blocks={
            "user": FeatureBlock(
                "user",
                users["user_id"].astype(str).tolist(),
                user_cols,
                users[user_cols].to_numpy(dtype="float32"),
            ),
            "item": FeatureBlock(
                "item",
                items["item_id"].astype(str).tolist(),
                item_cols,
                items[item_cols].to_numpy(dtype="float32"),
            ),
        },
        recall=_recall_lists(bundle),
        meta={"schema_hash": registry.schema_hash, "as_of": meta.get("as_of"), "run_id": meta.get("run_id")},
    )
    bar = tqdm(desc="sync", unit="rec", disable=not progress, delay=0.5)

    def on_progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    with open_online_store(store_url, fallback_url) as store:
        # versions are immutable: re-publishing one the store already holds just re-activates it
        if version in store.versions():
            if activate:
                store.activate(version)
            action = "activated" if activate else "already published"
        else:
            store.publish(snapshot, activate=activate, progress=on_progress)
            action = "published and activated" if activate else "published (not active)"
        active = store.active_version()
    bar.close()
    return {
        "version": version,
        "action": action,
        "active_version": active,
        "users": len(users),
        "items": len(items),
        "recall_lists": {c: len(v) for c, v in snapshot.recall.items()},
        "store": redact(store_url),
        "fallback": redact(fallback_url) if fallback_url else None,
        "schema_hash": registry.schema_hash,
    }


def sync_step(
    *,
    bundle: Path,
    data_dir: Path,
    store_url: str,
    fallback_url: str | None,
    activate: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    result = publish_bundle(bundle, store_url, fallback_url, progress=progress, activate=activate)
    if activate:
        write_json(
            bundles_dir(data_dir) / LATEST,
            {"version": bundle.name, "path": str(bundle.resolve()), "published_at": utc_now().isoformat()},
        )
    result["bundle"] = str(bundle)
    run_id = json.loads((bundle / "features" / "meta.json").read_text()).get("run_id", bundle.name)
    write_json(run_record_path(data_dir, run_id, "sync_store"), result)
    return result
