"""A trained ranker as it lives in a bundle (``<bundle>/ranker/``), and how servers load it.

Files: ``model.onnx`` (default runtime), ``model.txt`` (LightGBM native), ``logistic.json``
(fallback), ``ranker.json`` (objective, feature names, schema hash, metrics, ONNX parity).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np

from recsys.errors import InvalidInput, PipelineError
from recsys.ranking.logistic import LogisticRanker
from recsys.ranking.onnx_export import check_parity, export_onnx, onnx_scores, onnx_session
from recsys.ranking.trainer import TrainedRanker

Runtime = Literal["onnx", "lightgbm", "logistic"]
ONNX_FILE, NATIVE_FILE, LOGISTIC_FILE, INFO_FILE = "model.onnx", "model.txt", "logistic.json", "ranker.json"


def save_ranker(
    trained: TrainedRanker, directory: Path, *, schema_hash: str, parity_rows: np.ndarray, tolerance: float
) -> dict[str, Any]:
    """Write all three runtimes into a temporary directory, check ONNX parity, then swap it in:
    a model that fails the check never replaces the one a directory already holds."""
    staging = directory.with_name(f".{directory.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        trained.booster.save_model(str(staging / NATIVE_FILE))
        export_onnx(trained.booster, len(trained.feature_names), staging / ONNX_FILE)
        diff = check_parity(trained.booster, staging / ONNX_FILE, parity_rows, tolerance)
        trained.logistic.save(staging / LOGISTIC_FILE)
        info = {
            "objective": trained.objective,
            "feature_names": trained.feature_names,
            "schema_hash": schema_hash,
            "metrics": trained.metrics,
            "onnx_max_abs_diff": diff,
            "onnx_parity_rows": len(parity_rows),
            "trees": trained.booster.current_iteration(),
        }
        (staging / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return info


@dataclass
class Ranker:
    """Scores candidate feature matrices with the chosen runtime."""

    runtime: Runtime
    info: dict[str, Any]
    _score: Any

    @property
    def feature_names(self) -> list[str]:
        return list(self.info["feature_names"])

    @property
    def schema_hash(self) -> str:
        return str(self.info["schema_hash"])

    def score(self, X: np.ndarray) -> np.ndarray:
        if X.ndim != 2 or X.shape[1] != len(self.info["feature_names"]):
            raise InvalidInput(
                f"features: expected a (n, {len(self.info['feature_names'])}) matrix, got {tuple(X.shape)}"
            )
        return np.asarray(self._score(X), dtype=np.float32)


def load_ranker(directory: Path, runtime: Runtime = "onnx") -> Ranker:
    info_path = directory / INFO_FILE
    if not info_path.exists():
        raise PipelineError(f"ranker: {directory} holds no {INFO_FILE}")
    info = json.loads(info_path.read_text())
    if runtime == "onnx":
        session = onnx_session(directory / ONNX_FILE)
        return Ranker(runtime, info, lambda X: onnx_scores(session, X))
    if runtime == "lightgbm":
        booster = lgb.Booster(model_file=str(directory / NATIVE_FILE))
        return Ranker(
            runtime, info, lambda X: booster.predict(np.asarray(X, dtype=np.float32), num_threads=1)
        )
    if runtime == "logistic":
        logistic = LogisticRanker.load(directory / LOGISTIC_FILE)
        return Ranker(runtime, info, logistic.predict)
    raise InvalidInput(f"ranker runtime: {runtime!r} is not one of onnx, lightgbm, logistic")
