"""Experiment assignment: one layer, users hashed into variants by a salted sha256.

``bucket = int(sha256(salt + user_id)[:8], 16) % 10000``; variants own consecutive bucket
ranges in config order, sized by their ``share``. The same user, salt and config always give
the same variant, in every replica, with no state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recsys.errors import ConfigError

BUCKETS = 10_000


class VariantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    share: float = Field(ge=0, le=1)
    ranker: str = "champion"
    recall_weights: dict[str, float] = Field(default_factory=dict)


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layer: str = "default"
    salt: str = Field(min_length=1)
    variants: list[VariantConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique: {names}")
        total = sum(v.share for v in self.variants)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"variant shares add up to {total:g}, expected 1")
        return self


@dataclass(frozen=True)
class Variant:
    name: str
    ranker: str
    recall_weights: dict[str, float] = field(default_factory=dict)


def bucket(salt: str, user_id: str) -> int:
    digest = hashlib.sha256(f"{salt}{user_id}".encode()).hexdigest()
    return int(digest[:8], 16) % BUCKETS


class Experiments:
    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self.variants = [Variant(v.name, v.ranker, dict(v.recall_weights)) for v in config.variants]
        # upper bucket bound (exclusive) per variant; the last one always closes at BUCKETS
        bounds, acc = [], 0.0
        for v in config.variants:
            acc += v.share
            bounds.append(round(acc * BUCKETS))
        bounds[-1] = BUCKETS
        self._bounds = bounds

    @classmethod
    def single(cls, name: str = "default") -> Experiments:
        """No experiment: everyone gets one variant with the recall config's weights."""
        return cls(ExperimentConfig(salt="none", variants=[VariantConfig(name=name, share=1.0)]))

    @classmethod
    def load(cls, path: Path) -> Experiments:
        try:
            data: Any = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"experiments: cannot read {path}: {e}") from e
        try:
            return cls(ExperimentConfig.model_validate(data or {}))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "config"
            raise ConfigError(f"experiments: {path}: {where}: {err['msg']}") from e

    @property
    def shares(self) -> dict[str, float]:
        return {v.name: v.share for v in self.config.variants}

    def assign(self, user_id: str) -> Variant:
        b = bucket(self.config.salt, user_id)
        for variant, upper in zip(self.variants, self._bounds, strict=True):
            if b < upper:
                return variant
        return self.variants[-1]  # unreachable: the last bound is BUCKETS
