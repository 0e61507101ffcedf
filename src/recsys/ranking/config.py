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
    n_estimators: int = Field(200, ge=10, le=5000)
    learning_rate: float = Field(0.05, gt=0, le=1)
    num_leaves: int = Field(31, ge=4, le=1024)
    min_child_samples: int = Field(50, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    early_stopping_rounds: int = Field(30, ge=0, description="0 disables early stopping")
    logistic_c: float = Field(1.0, gt=0, description="inverse L2 strength of the fallback ranker")
    onnx_tolerance: float = Field(1e-5, gt=0, description="max abs diff ONNX vs native on a held batch")
    seed: int = 7


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holdout_days: float = Field(3.0, gt=0, description="the newest days, kept for evaluation")
    valid_days: float = Field(3.0, gt=0, description="ranker validation window before the holdout")
    train_days: float = Field(11.0, gt=0, description="ranker training window before validation")
    candidates: int = Field(300, ge=10, le=2000, description="fused candidates the ranker scores")
    eval_k: list[int] = Field(default_factory=lambda: [10, 20, 50])
    eval_max_users: int = Field(2000, ge=10, description="users sampled for the end-to-end evaluation")
    history_size: int = Field(50, ge=1, description="recent positives kept per user for recall")
    negatives: int = Field(4, ge=1, description="sampled negatives per positive without impressions")
    recall_features: bool = Field(True, description="per-channel recall ranks as ranker inputs")
    seed: int = 7
