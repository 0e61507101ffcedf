"""Recall configuration (``config/recall.yaml``): channels, their weights and params, fusion.

Each channel's ``params`` are validated against its type's ``Params`` model at load time, so a
misspelt parameter is an error naming the channel instead of a silently ignored key.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsys.errors import ConfigError
from recsys.recall.base import ChannelParams
from recsys.recall.data import DEFAULT_WEIGHTS, check_weights
from recsys.recall.filtering import SeenPolicy
from recsys.recall.registry import CHANNELS

DEFAULT_CONFIG = Path("config/recall.yaml")
# channel names become online-store channel names (see recsys.store.base.NAME_RE)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    type: str
    weight: float = Field(1.0, ge=0, description="fusion weight; 0 = recalled and reported, not fused")
    k: int = Field(100, ge=1, description="candidates asked from the channel per request")
    enabled: bool = True
    params: dict[str, Any] = Field(default_factory=dict)

    def parsed_params(self) -> ChannelParams:
        return CHANNELS[self.type].parse_params(self.params, self.name)


class FusionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["reciprocal_rank", "minmax"] = "reciprocal_rank"
    rank_offset: float = Field(1.0, gt=0, description="reciprocal_rank: 1 / (rank + offset), rank from 0")
    k: int = Field(500, ge=1, description="candidates kept after fusion")


class FilterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exclude_inactive: bool = True
    exclude_seen: SeenPolicy = Field(default_factory=SeenPolicy)


class RecallConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    interaction_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    channels: list[ChannelConfig]

    @property
    def active(self) -> list[ChannelConfig]:
        return [c for c in self.channels if c.enabled]


def _where(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def _channel(entry: Any, i: int, source: str) -> ChannelConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"{source}: channels[{i}] must be a mapping, got {entry!r}")
    entry = dict(entry)
    entry.setdefault("name", entry.get("type"))
    label = f"channels[{i}] ({entry.get('name')!r})"
    kind = entry.get("type")
    if kind not in CHANNELS:
        close = difflib.get_close_matches(str(kind), list(CHANNELS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(CHANNELS)})"
        raise ConfigError(f"{source}: {label}: unknown channel type {kind!r}{hint}")
    try:
        channel = ChannelConfig.model_validate(entry)
    except ValidationError as e:
        raise ConfigError(f"{source}: {label}: {_where(e)}") from e
    try:
        CHANNELS[channel.type].Params.model_validate(channel.params)
    except ValidationError as e:
        raise ConfigError(f"{source}: {label}: params.{_where(e)}") from e
    return channel


def config_from_dict(data: dict[str, Any], source: str = "recall config") -> RecallConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a mapping")
    entries = data.get("channels")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: 'channels' must be a non-empty list")
    channels = [_channel(entry, i, source) for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for c in channels:
        if c.name in seen:
            raise ConfigError(f"{source}: channel name {c.name!r} is used twice")
        seen.add(c.name)
    try:
        weights = check_weights(data.get("interaction_weights") or dict(DEFAULT_WEIGHTS))
    except ConfigError as e:
        raise ConfigError(f"{source}: {e.message.removeprefix('recall: ')}") from e
    rest = {k: v for k, v in data.items() if k not in ("channels", "interaction_weights")}
    try:
        config = RecallConfig.model_validate({**rest, "channels": channels, "interaction_weights": weights})
    except ValidationError as e:
        raise ConfigError(f"{source}: {_where(e)}") from e
    if not config.active:
        raise ConfigError(f"{source}: every channel is disabled")
    return config


def load_recall_config(path: Path = DEFAULT_CONFIG) -> RecallConfig:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"recall config: {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recall config: {path} is not valid YAML: {e}") from e
    return config_from_dict(data, source=str(path))
