"""Process settings: defaults <- config/recsys.yaml <- RECSYS_* environment <- CLI flags.

Built once in ``main()`` and passed down; nothing reads configuration at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from recsys.cleaning.config import CleaningConfig
from recsys.errors import ConfigError

DEFAULT_CONFIG = Path("config/recsys.yaml")


class CdcConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tables: list[str] = Field(default_factory=lambda: ["users", "items", "orders", "events"])
    chunk_rows: int = Field(200_000, gt=0, description="rows fetched per round trip")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RECSYS_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Field(Path("data"), description="working directory of the pipeline")
    source_db: str | None = Field(None, description="SQLAlchemy URL; default sqlite in data_dir")
    image: str = Field(
        "ghcr.io/recsys-project/recsys-python:0.1.0",
        description="container image of the KFP components (holds the installed project)",
    )
    keep_local_runs: int = Field(5, ge=1, description="kfp.local runs whose artifacts are kept")
    cdc: CdcConfig = CdcConfig()
    cleaning: CleaningConfig = CleaningConfig()

    @property
    def source_db_url(self) -> str:
        return self.source_db or f"sqlite:///{(self.data_dir / 'source.db').as_posix()}"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"


class _YamlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config: {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping at the top level")
    return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; ``overrides`` (CLI flags) win, ``None`` values are ignored."""
    path = config_file or Path(os.environ.get("RECSYS_CONFIG", DEFAULT_CONFIG))
    if config_file is not None and not path.exists():
        raise ConfigError(f"config: {path} does not exist")
    yaml_data = _read_yaml(path) if path.exists() else {}

    class _Settings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, _YamlSource(settings_cls, yaml_data)

    try:
        built = _Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"config: {field}: {err['msg']} (from {path}, RECSYS_* or flags)") from e
    return Settings.model_validate(built.model_dump())
