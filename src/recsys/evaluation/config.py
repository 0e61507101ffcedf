"""How the pipeline and ``recsys evaluate`` measure the served chain (``evaluation:`` in
config/recsys.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recsys.evaluation.baselines import BASELINES
from recsys.evaluation.protocols import Positives, Protocol, choices


class EvaluationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol: str = Field(
        "auto",
        description="time-cut:Q (a global quantile of time), last-n:N (per user), or auto: time-cut:0.9 or "
        "last-n:10, whichever leaves more test users",
    )
    positive_min_value: float | None = Field(
        None, description="relevant = an interaction with value >= this (ratings); unset: click/cart/purchase"
    )
    ks: list[int] = Field(default_factory=lambda: [10, 20], min_length=1)
    max_users: int = Field(2000, ge=10, description="test users scored (a seeded sample beyond this)")
    min_users: int = Field(5, ge=1, description="fewer test users with relevant items is an error")
    baselines: list[str] = Field(default_factory=lambda: list(BASELINES))
    reference: str = Field("ease", description="the baseline every ratio is taken against")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples of the users (0: no intervals)")
    seed: int = 7

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        choices(value, "evaluation.protocol")
        return value

    @field_validator("baselines")
    @classmethod
    def _baselines(cls, value: list[str]) -> list[str]:
        unknown = [b for b in value if b not in BASELINES]
        if unknown:
            raise ValueError(f"unknown baseline(s) {unknown} (known: {', '.join(BASELINES)})")
        return value

    @property
    def protocols(self) -> list[Protocol]:
        return choices(self.protocol, "evaluation.protocol")

    @property
    def positives(self) -> Positives:
        return Positives(min_value=self.positive_min_value)
