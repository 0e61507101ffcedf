"""Step sync_store: copy the run's outputs into its bundle and publish it to the online store.

A bundle is ``<data_dir>/bundles/<version>/`` (the version is the run id); ``bundles/LATEST.json``
names the newest published one, which ``--sync-only`` / ``recsys store sync`` re-publish
without recomputing anything.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tqdm import tqdm

from recsys.errors import PipelineError
from recsys.steps.common import read_run, run_record_path, utc_now, write_json
from recsys.steps.features import read_features
from recsys.store import FallbackStore, FeatureBlock, OnlineStore, StoreSnapshot, open_store
from recsys.store.base import redact

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


def open_online_store(url: str, fallback_url: str | None) -> OnlineStore:
    """The primary store, backed by a SQLite fallback when one is configured."""
    primary = open_store(url)
    return FallbackStore(primary, open_store(fallback_url)) if fallback_url else primary


def publish_bundle(
    bundle: Path, store_url: str, fallback_url: str | None, *, progress: bool = True
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
            store.activate(version)
            action = "activated"
        else:
            store.publish(snapshot, progress=on_progress)
            action = "published"
        active = store.active_version()
    bar.close()
    return {
        "version": version,
        "action": action,
        "active_version": active,
        "users": len(users),
        "items": len(items),
        "store": redact(store_url),
        "fallback": redact(fallback_url) if fallback_url else None,
        "schema_hash": registry.schema_hash,
    }


def sync_step(
    *, features_dir: Path, data_dir: Path, store_url: str, fallback_url: str | None, progress: bool = True
) -> dict[str, Any]:
    run_id, _ = read_run(features_dir)
    bundle = bundles_dir(data_dir) / run_id
    target = bundle / "features"
    if target.resolve() != features_dir.resolve():
        tmp = bundle / ".features.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(features_dir, tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    result = publish_bundle(bundle, store_url, fallback_url, progress=progress)
    write_json(
        bundles_dir(data_dir) / LATEST,
        {"version": run_id, "path": str(bundle.resolve()), "published_at": utc_now().isoformat()},
    )
    result["bundle"] = str(bundle)
    write_json(run_record_path(data_dir, run_id, "sync_store"), result)
    return result
