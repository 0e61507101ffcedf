"""Step train: recall channels (with the Faiss index), the LightGBM ranker + ONNX + fallback.

Writes a model directory: ``ranker/`` (see recsys.ranking.model), ``recall/`` (channels fitted
on all data up to the run time, for serving), ``histories.parquet`` (each user's recent
positives, which the online recall needs) and ``training.json`` (metrics, evaluation, timings).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.features.registry import registry_from_dict
from recsys.ranking.config import RankingConfig, TrainingConfig
from recsys.ranking.flow import histories, train_and_evaluate
from recsys.ranking.model import save_ranker
from recsys.recall.base import RecallData
from recsys.recall.config import config_from_dict
from recsys.recall.engine import RecallEngine
from recsys.steps.clean import read_cleaned
from recsys.steps.common import HISTORIES_FILE, RUN_FILE, TRAINING_FILE, read_run, run_record_path, write_json
from recsys.steps.features import REGISTRY_FILE

__all__ = ["HISTORIES_FILE", "TRAINING_FILE", "train_step"]


def train_step(
    *,
    cleaned_dir: Path,
    features_dir: Path,
    recall_config: dict[str, Any],
    ranking_config: dict[str, Any],
    training_config: dict[str, Any],
    data_dir: Path,
    model_dir: Path,
) -> dict[str, Any]:
    run_id, now = read_run(cleaned_dir)
    registry = registry_from_dict(json.loads((features_dir / REGISTRY_FILE).read_text()))
    recall_cfg = config_from_dict(recall_config, source="recall parameter")
    ranking_cfg = RankingConfig.model_validate(ranking_config)
    training_cfg = TrainingConfig.model_validate(training_config)
    tables = read_cleaned(cleaned_dir)

    result = train_and_evaluate(tables, now, registry, recall_cfg, ranking_cfg, training_cfg)
    model_dir.mkdir(parents=True, exist_ok=True)
    ranker_info = save_ranker(
        result.ranker,
        model_dir / "ranker",
        schema_hash=registry.schema_hash,
        parity_rows=result.parity_rows,
        tolerance=ranking_cfg.onnx_tolerance,
    )
    # serving recall: the same channels refitted on everything up to the run time
    serving = RecallEngine(recall_cfg)
    events = tables["events"].assign(user_id=lambda f: f["user_id"].astype(str))
    serving.fit_all(RecallData.from_tables({**tables, "events": events}, now, recall_cfg.interaction_weights))
    serving.save(model_dir / "recall")
    hist = histories(events, now, training_cfg.history_size)
    users = tables["users"].assign(user_id=lambda f: f["user_id"].astype(str)).set_index("user_id")
    # recall needs each user's recent positives and industry online; both ship with the bundle
    pd.DataFrame(
        {
            "user_id": users.index,
            "industry": users["industry"].to_numpy(),
            "items": ["|".join(hist.get(u, [])) for u in users.index],
        }
    ).to_parquet(model_dir / HISTORIES_FILE, index=False)
    shutil.copy(cleaned_dir / RUN_FILE, model_dir / RUN_FILE)
    channels = {
        c.name: {"enabled": c.enabled, "disabled_reason": c.disabled_reason, "stats": c.stats}
        for c in serving.channels
    }
    summary = {
        "run_id": run_id,
        "objective": ranker_info["objective"],
        "ranker_features": len(result.feature_names),
        "onnx_max_abs_diff": ranker_info["onnx_max_abs_diff"],
        "metrics": result.metrics,
        "evaluation": result.evaluation,
        "channels": channels,
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
        "schema_hash": registry.schema_hash,
        "model_dir": str(model_dir),
    }
    write_json(model_dir / TRAINING_FILE, summary)
    write_json(run_record_path(data_dir, run_id, "train"), summary)
    return summary
