"""Step train: the ranker trained and measured on the protocol's split, then the serving recall.

Writes a model directory: ``ranker/`` (see recsys.ranking.model), ``recall/`` (channels fitted
on everything up to the as-of time, for serving), ``histories.parquet`` (each user's recent
positives and seen items, which the online chain needs), ``chain.json`` (the chain settings the
bundle was evaluated with) and ``training.json`` (metrics, the evaluation, timings).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from recsys.chain.config import ChainConfig
from recsys.chain.users import UserStates
from recsys.evaluation.config import EvaluationConfig
from recsys.features.registry import registry_from_dict
from recsys.ranking.config import RankingConfig, TrainingConfig
from recsys.ranking.flow import train_and_evaluate, up_to
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
    chain_config: dict[str, Any],
    evaluation_config: dict[str, Any],
    data_dir: Path,
    model_dir: Path,
) -> dict[str, Any]:
    run = read_run(cleaned_dir)
    registry = registry_from_dict(json.loads((features_dir / REGISTRY_FILE).read_text()))
    recall_cfg = config_from_dict(recall_config, source="recall parameter")
    ranking_cfg = RankingConfig.model_validate(ranking_config)
    training_cfg = TrainingConfig.model_validate(training_config)
    chain_cfg = ChainConfig.model_validate(chain_config)
    eval_cfg = EvaluationConfig.model_validate(evaluation_config)
    everything = read_cleaned(cleaned_dir)
    result = train_and_evaluate(
        everything, run.as_of, registry, recall_cfg, ranking_cfg, training_cfg, chain_cfg, eval_cfg
    )
    model_dir.mkdir(parents=True, exist_ok=True)
    ranker_info = save_ranker(
        result.ranker,
        model_dir / "ranker",
        schema_hash=result.schema_hash,
        parity_rows=result.parity_rows,
        tolerance=ranking_cfg.onnx_tolerance,
    )
    # serving recall: the same channels refitted on everything up to the as-of time
    tables = up_to(everything, run.as_of)
    started = time.perf_counter()
    serving = RecallEngine(recall_cfg)
    serving.fit_all(RecallData.from_tables(tables, run.as_of, recall_cfg.interaction_weights), result.recall)
    serving.save(model_dir / "recall")
    result.timings["serving_recall_fit"] = time.perf_counter() - started
    states = UserStates.build(tables, recall_cfg.filter.exclude_seen, chain_cfg.history_size)
    users = sorted(set(tables["users"]["user_id"].astype(str)) | set(states.users()))
    states.save(model_dir / HISTORIES_FILE, users)
    chain_cfg.save(model_dir)
    shutil.copy(cleaned_dir / RUN_FILE, model_dir / RUN_FILE)
    channels = {
        c.name: {"enabled": c.enabled, "disabled_reason": c.disabled_reason, "stats": c.stats}
        for c in serving.channels
    }
    summary = {
        "run_id": run.run_id,
        "as_of": run.as_of.isoformat(),
        "objective": ranker_info["objective"],
        "ranker_features": len(result.feature_names),
        "onnx_max_abs_diff": ranker_info["onnx_max_abs_diff"],
        "metrics": result.metrics,
        "evaluation": result.evaluation,
        "channels": channels,
        "seen_policy": recall_cfg.filter.exclude_seen.describe(),
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
        "schema_hash": result.schema_hash,
        "model_dir": str(model_dir),
    }
    write_json(model_dir / TRAINING_FILE, summary)
    write_json(run_record_path(data_dir, run.run_id, "train"), summary)
    return summary
