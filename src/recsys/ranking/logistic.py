"""The fallback ranker: standardized logistic regression, stored as plain JSON coefficients.

Small enough to score in-process anywhere (the transformer uses it when the predictor is down),
with no model runtime at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression


@dataclass
class LogisticRanker:
    feature_names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ self.coef + self.intercept)))

    def save(self, path: Path) -> None:
        payload = {
            "feature_names": self.feature_names,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }
        path.write_text(json.dumps(payload) + "\n")

    @classmethod
    def load(cls, path: Path) -> LogisticRanker:
        raw = json.loads(path.read_text())
        return cls(
            raw["feature_names"],
            np.asarray(raw["mean"]),
            np.asarray(raw["scale"]),
            np.asarray(raw["coef"]),
            float(raw["intercept"]),
        )


def fit_logistic(X: np.ndarray, y: np.ndarray, names: list[str], c: float = 1.0) -> LogisticRanker:
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = LogisticRegression(C=c, max_iter=500)
    model.fit((X - mean) / scale, y)
    return LogisticRanker(
        list(names), mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0])
    )
