"""The feature registry: every feature declared once (config/features.yaml).

Both the offline pipeline and the online transformer build their vectors from this registry,
so the column order of a user/item vector and of the ranker's input is defined in one place.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsys.errors import ConfigError

DEFAULT_REGISTRY = Path("config/features.yaml")
Entity = Literal["user", "item", "cross"]
DTYPES = ("float32", "int32", "bool", "category")


class FeatureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    entity: Entity
    dtype: Literal["float32", "int32", "bool", "category"]
    default: float = 0.0
    kind: Literal["scalar", "profile"] = "scalar"
    dim: int = Field(1, ge=1, le=1024)
    description: str = Field(min_length=3)

    @property
    def columns(self) -> list[str]:
        """Vector columns: the name itself, or ``name[i]`` for each element of a profile."""
        if self.kind == "profile":
            return [f"{self.name}[{i}]" for i in range(self.dim)]
        return [self.name]


class Smoothing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ctr_prior_weight: float = Field(20.0, gt=0)
    cvr_prior_weight: float = Field(10.0, gt=0)


@dataclass(frozen=True)
class FeatureRegistry:
    features: tuple[FeatureSpec, ...]
    smoothing: Smoothing

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for spec in self.features:
            if spec.name in seen:
                raise ConfigError(f"feature registry: duplicate feature name {spec.name!r}")
            seen.add(spec.name)
            if spec.entity == "cross" and spec.kind == "profile":
                raise ConfigError(f"feature registry: {spec.name}: cross features cannot be profiles")

    def entity(self, entity: Entity, *, kind: str | None = None) -> list[FeatureSpec]:
        return [f for f in self.features if f.entity == entity and (kind is None or f.kind == kind)]

    def get(self, name: str) -> FeatureSpec:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def vector_columns(self, entity: Literal["user", "item"]) -> list[str]:
        """Column order of a stored user or item vector (scalars, then profile blocks)."""
        specs = self.entity(entity, kind="scalar") + self.entity(entity, kind="profile")
        return [c for spec in specs for c in spec.columns]

    def vector_defaults(self, entity: Literal["user", "item"]) -> list[float]:
        specs = self.entity(entity, kind="scalar") + self.entity(entity, kind="profile")
        return [spec.default for spec in specs for _ in spec.columns]

    @property
    def ranker_columns(self) -> list[str]:
        """The ranker's input order: user scalars, item scalars, cross features."""
        return [
            f.name
            for e in ("user", "item", "cross")
            for f in self.entity(e, kind="scalar")  # type: ignore[arg-type]
        ]

    @property
    def schema_hash(self) -> str:
        """Changes whenever a name, entity, dtype, kind, dim or order changes."""
        payload = [[f.name, f.entity, f.dtype, f.kind, f.dim] for f in self.features]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def registry_from_dict(data: dict[str, Any], source: str = "feature registry") -> FeatureRegistry:
    entries = data.get("features")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: 'features' must be a non-empty list")
    specs = []
    for i, entry in enumerate(entries):
        label = entry.get("name", f"#{i}") if isinstance(entry, dict) else f"#{i}"
        try:
            specs.append(FeatureSpec.model_validate(entry))
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "entry"
            value = entry.get(field) if isinstance(entry, dict) else entry
            raise ConfigError(f"{source}: feature {label!r}: {field}: {err['msg']} (got {value!r})") from e
    try:
        smoothing = Smoothing.model_validate(data.get("smoothing") or {})
    except ValidationError as e:
        raise ConfigError(f"{source}: smoothing: {e.errors()[0]['msg']}") from e
    return FeatureRegistry(tuple(specs), smoothing)


def load_registry(path: Path = DEFAULT_REGISTRY) -> FeatureRegistry:
    if not path.exists():
        raise ConfigError(f"feature registry: {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"feature registry: {path} is not valid YAML: {e}") from e
    return registry_from_dict(data, source=str(path))
