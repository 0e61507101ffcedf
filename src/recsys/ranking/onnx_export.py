"""Export the LightGBM ranker to ONNX and prove it scores like the native model."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnxmltools
import onnxruntime as ort
from onnxmltools.convert.common.data_types import FloatTensorType

from recsys.errors import PipelineError

INPUT_NAME = "features"
TARGET_OPSET = 15


def float32_thresholds(booster: lgb.Booster) -> lgb.Booster:
    """The same model with every split threshold lowered to the largest float32 <= it.

    LightGBM compares features to double thresholds; ONNX Runtime's tree ensemble casts the
    thresholds to float32. A float32 feature that lies between a threshold and its float32
    rounding goes left in one and right in the other. With float32-exact thresholds both agree,
    and the native model's decisions on float32 inputs do not change.
    """
    lines = booster.model_to_string().split("\n")
    for n, line in enumerate(lines):
        if line.startswith("threshold="):
            values = np.array(line[len("threshold=") :].split(), dtype=np.float64)
            as32 = values.astype(np.float32)
            too_high = as32.astype(np.float64) > values
            as32[too_high] = np.nextafter(as32[too_high], np.float32(-np.inf))
            lines[n] = "threshold=" + " ".join(repr(float(v)) for v in as32)
    # tree_sizes holds byte offsets of the original text; without it LightGBM parses sequentially
    return lgb.Booster(model_str="\n".join(line for line in lines if not line.startswith("tree_sizes=")))


def export_onnx(booster: lgb.Booster, n_features: int, path: Path) -> None:
    model = onnxmltools.convert_lightgbm(
        booster,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET,
        zipmap=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(path)


def onnx_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # one request scores ~300 rows: thread fan-out costs more than it saves
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # onnxmltools declares the unused `label` output as shape [1]: ORT warns on every batch
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_scores(session: ort.InferenceSession, X: np.ndarray) -> np.ndarray:
    """The score the native ``Booster.predict`` gives: P(positive) for binary, the raw score otherwise."""
    outputs = session.run(None, {INPUT_NAME: np.ascontiguousarray(X, dtype=np.float32)})
    last = outputs[-1]
    return last[:, 1] if last.ndim == 2 and last.shape[1] == 2 else last.reshape(-1)


def check_parity(booster: lgb.Booster, onnx_path: Path, X: np.ndarray, tolerance: float) -> float:
    """Max abs diff between ONNX and native scores on ``X``; PipelineError above ``tolerance``."""
    native = booster.predict(np.asarray(X, dtype=np.float32))
    exported = onnx_scores(onnx_session(onnx_path), X)
    diff = float(np.max(np.abs(native - exported))) if len(X) else 0.0
    if not diff <= tolerance:
        raise PipelineError(
            f"ranking: ONNX export differs from the native model by {diff:.3g} (> {tolerance:g}) "
            f"on {len(X)} held rows; not publishing it"
        )
    return diff
