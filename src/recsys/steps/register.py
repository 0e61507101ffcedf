"""Step register: assemble the bundle, track the run in MLflow, register it, promote if better.

The bundle ``<data_dir>/bundles/<run_id>/`` holds ``features/``, ``recall/``, ``ranker/``,
``histories.parquet``, ``chain.json``, ``evaluation.json`` and ``manifest.json`` (version,
schema hash, data window, metrics). MLflow registers it as a model version with alias
``challenger``; it becomes ``champion`` when its end-to-end NDCG@20 is at least the champion's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from recsys.chain.config import CHAIN_FILE
from recsys.models.registry import ModelRegistry
from recsys.models.tracking import tracking_uri
from recsys.steps.common import (
    HISTORIES_FILE,
    TRAINING_FILE,
    read_run,
    run_record_path,
    utc_now,
    write_json,
)
from recsys.steps.sync import bundles_dir

PROMOTION_METRIC = "ndcg_at_20"


def _copy_dir(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def assemble_bundle(features_dir: Path, model_dir: Path, summary_json: Path, bundle: Path) -> dict[str, Any]:
    bundle.mkdir(parents=True, exist_ok=True)
    if features_dir.resolve() != (bundle / "features").resolve():
        _copy_dir(features_dir, bundle / "features")
    _copy_dir(model_dir / "ranker", bundle / "ranker")
    _copy_dir(model_dir / "recall", bundle / "recall")
    shutil.copy(model_dir / HISTORIES_FILE, bundle / HISTORIES_FILE)
    shutil.copy(model_dir / CHAIN_FILE, bundle / CHAIN_FILE)
    shutil.copy(summary_json, bundle / "evaluation.json")
    training = json.loads((model_dir / TRAINING_FILE).read_text())
    features_meta = json.loads((features_dir / "meta.json").read_text())
    e2e = training["evaluation"]["end_to_end"]
    manifest = {
        "version": bundle.name,
        "schema_hash": training["schema_hash"],
        "created_at": utc_now().isoformat(),
        "data_as_of": features_meta.get("as_of"),
        "evaluation": {
            "protocol": training["evaluation"]["protocol"],
            "split": training["evaluation"]["split"],
        },
        "ranker": {"objective": training["objective"], "features": training["ranker_features"]},
        "metrics": {
            PROMOTION_METRIC: e2e.get("ndcg@20"),
            "recall_at_20": e2e.get("recall@20"),
            "ndcg_at_20_vs_ease": training["evaluation"]["comparison"]["methods"]["served"].get(
                "ndcg@20_vs_ease"
            ),
            "holdout_auc": training["metrics"].get("holdout_auc"),
            "holdout_logloss": training["metrics"].get("holdout_logloss"),
        },
    }
    write_json(bundle / "manifest.json", manifest)
    return manifest


def register_step(
    *,
    features_dir: Path,
    model_dir: Path,
    summary_json: Path,
    data_dir: Path,
    mlflow_uri: str | None,
    model_name: str,
) -> dict[str, Any]:
    run_id = read_run(model_dir).run_id
    bundle = bundles_dir(data_dir) / run_id
    manifest = assemble_bundle(features_dir, model_dir, summary_json, bundle)
    training = json.loads((model_dir / TRAINING_FILE).read_text())
    metrics = {k: float(v) for k, v in manifest["metrics"].items() if v is not None}
    registry = ModelRegistry(tracking_uri(data_dir, mlflow_uri), model_name=model_name)
    mlflow_run = registry.log_run(
        run_name=run_id,
        params={
            "objective": training["objective"],
            "schema_hash": training["schema_hash"],
            "ranker_features": training["ranker_features"],
        },
        metrics={**{k: float(v) for k, v in training["metrics"].items()}, **metrics},
        artifacts={"evaluation": summary_json, "quality": data_dir / "quality" / "latest.html"}
        if (data_dir / "quality" / "latest.html").exists()
        else {"evaluation": summary_json},
        tags={"bundle_version": run_id},
    )
    version = registry.register(run_id=mlflow_run, bundle_dir=bundle, bundle_version=run_id, metrics=metrics)
    decision = registry.promote_if_better(version.version, metric=PROMOTION_METRIC)
    result = {
        "run_id": run_id,
        "bundle": str(bundle),
        "mlflow_run_id": mlflow_run,
        "model": model_name,
        "model_version": version.version,
        "promoted": decision.promoted,
        "reason": decision.reason,
        PROMOTION_METRIC: metrics.get(PROMOTION_METRIC),
    }
    write_json(bundle / "registration.json", result)
    write_json(run_record_path(data_dir, run_id, "register"), result)
    return result
