"""Ranker and training-window settings (``ranking:`` and ``training:`` in config/recsys.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RankingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    objective: Literal["auto", "binary", "lambdarank"] = Field(
        "auto", description="auto trains both and keeps the one with the better validation NDCG@10"
    )
    auto_margin: float = Field(
        0.01,
        ge=0,
        description="auto: binary replaces lambdarank only when its validation NDCG@10 is higher by more "
        "than this fraction (a near tie keeps the ranking objective)",
    )
    n_estimators: int = Field(600, ge=10, le=5000)
    learning_rate: float = Field(0.02, gt=0, le=1)
    num_leaves: int = Field(31, ge=4, le=1024)
    min_child_samples: int = Field(50, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    early_stopping_rounds: int = Field(60, ge=0, description="0 disables early stopping")
    refit_on_validation: bool = Field(
        True, description="after choosing the objective and the trees, fit once more on training + validation"
    )
    logistic_c: float = Field(1.0, gt=0, description="inverse L2 strength of the fallback ranker")
    onnx_tolerance: float = Field(1e-5, gt=0, description="max abs diff ONNX vs native on a held batch")
    seed: int = 7


class TrainingConfig(BaseModel):
    """How the ranker's rows are made (see recsys.ranking.rows)."""

    model_config = ConfigDict(extra="forbid")

    negatives: int = Field(100, ge=1, description="candidates sampled per user as negatives")
    valid_share: float = Field(0.2, gt=0, lt=1, description="label users kept for validation")
    min_label_users: int = Field(10, ge=2, description="fewer users to learn from is an error")
    label_protocol: str = Field(
        "auto",
        description="where the labels come from: auto (the test protocol or its counterpart, whichever "
        "leaves more label users) or a protocol (last-n:N, time-cut:Q)",
    )
    seed: int = 7
