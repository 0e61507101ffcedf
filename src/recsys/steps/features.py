"""Step features: FeatureEngineV2 over the cleaned tables -> user/item vectors for serving."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.features.engine import FeatureEngineV2
from recsys.features.registry import FeatureRegistry, registry_from_dict
from recsys.steps.clean import read_cleaned
from recsys.steps.common import RUN_FILE, read_run, run_record_path, write_json

USER_FILE, ITEM_FILE, META_FILE, REGISTRY_FILE = (
    "user_features.parquet",
    "item_features.parquet",
    "meta.json",
    "registry.json",
)


def features_step(
    *, cleaned_dir: Path, registry: dict[str, Any], data_dir: Path, features_dir: Path, progress: bool = True
) -> dict[str, Any]:
    run_id, _, now = read_run(cleaned_dir)
    reg = registry_from_dict(registry, source="registry parameter")
    tables = read_cleaned(cleaned_dir)
    frames = FeatureEngineV2(reg, progress=progress).compute(tables, now, snapshots=1)
    features_dir.mkdir(parents=True, exist_ok=True)
    frames.users.drop(columns="snapshot").to_parquet(features_dir / USER_FILE, index=False)
    frames.items.drop(columns="snapshot").to_parquet(features_dir / ITEM_FILE, index=False)
    (features_dir / REGISTRY_FILE).write_text(json.dumps(registry, indent=1) + "\n")
    meta = {
        **frames.meta,
        "run_id": run_id,
        "users": len(frames.users),
        "items": len(frames.items),
        "ranker_features": len(reg.ranker_columns),
    }
    write_json(features_dir / META_FILE, meta)
    shutil.copy(cleaned_dir / RUN_FILE, features_dir / RUN_FILE)
    write_json(run_record_path(data_dir, run_id, "features"), {**meta, "features_dir": str(features_dir)})
    return meta


def read_registry(features_dir: Path) -> FeatureRegistry:
    """The registry a features directory was computed with (without reading the vectors)."""
    return registry_from_dict(json.loads((features_dir / REGISTRY_FILE).read_text()))


def read_features(features_dir: Path) -> tuple[FeatureRegistry, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Registry, user frame, item frame and meta of a features directory."""
    registry = registry_from_dict(json.loads((features_dir / REGISTRY_FILE).read_text()))
    meta = json.loads((features_dir / META_FILE).read_text())
    return (
        registry,
        pd.read_parquet(features_dir / USER_FILE),
        pd.read_parquet(features_dir / ITEM_FILE),
        meta,
    )
