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

from recsys import IMAGE
from recsys.chain.config import ChainConfig
from recsys.cleaning.config import CleaningConfig
from recsys.errors import ConfigError
from recsys.evaluation.config import EvaluationConfig
from recsys.ranking.config import RankingConfig, TrainingConfig

# where config/ sits in a source checkout or an image that copies the tree (editable install)
SOURCE_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def config_dir() -> Path:
    """``$RECSYS_CONFIG_DIR``, else ``./config``, else the checkout's ``config/``."""
    if env := os.environ.get("RECSYS_CONFIG_DIR"):
        return Path(env)
    local = Path("config")
    return local if (local / "recsys.yaml").exists() else SOURCE_CONFIG_DIR


class CdcConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tables: list[str] = Field(default_factory=lambda: ["users", "items", "orders", "events"])
    chunk_rows: int = Field(200_000, gt=0, description="rows fetched per round trip")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Field(Path("data"), description="working directory of the pipeline")
    source_db: str | None = Field(None, description="SQLAlchemy URL; default sqlite in data_dir")
    image: str = Field(
        IMAGE, description="container image of the KFP components (holds the installed project)"
    )
    online_store: str | None = Field(
        None, description="redis://host:6379/0 or sqlite:///path; default sqlite in data_dir"
    )
    online_store_fallback: str | None = Field(
        None, description="SQLite store used when Redis is down; default sqlite in data_dir for redis"
    )
    quality_config: Path = Field(Path("quality.yaml"), description="data quality checks")
    feature_registry: Path = Field(Path("features.yaml"), description="feature registry")
    recall_config: Path = Field(Path("recall.yaml"), description="recall channels and fusion")
    pushgateway_url: str | None = Field(None, description="push quality metrics here when set")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking server; default a SQLite store under data_dir/mlflow"
    )
    model_name: str = Field("recsys-ranker", description="registered model name in MLflow")
    keep_local_runs: int = Field(5, ge=1, description="kfp.local runs whose artifacts are kept")
    cdc: CdcConfig = CdcConfig()
    cleaning: CleaningConfig = CleaningConfig()
    ranking: RankingConfig = RankingConfig()
    training: TrainingConfig = TrainingConfig()
    chain: ChainConfig = ChainConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @property
    def source_db_url(self) -> str:
        return self.source_db or f"sqlite:///{(self.data_dir.resolve() / 'source.db').as_posix()}"

    @property
    def online_store_url(self) -> str:
        return self.online_store or f"sqlite:///{(self.data_dir.resolve() / 'online_store.db').as_posix()}"

    @property
    def online_store_fallback_url(self) -> str | None:
        if self.online_store_fallback:
            return self.online_store_fallback
        if self.online_store_url.startswith(("redis://", "rediss://")):
            return f"sqlite:///{(self.data_dir.resolve() / 'online_store.db').as_posix()}"
        return None

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


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config: {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping at the top level")
    return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; ``overrides`` (CLI flags) win, ``None`` values are ignored."""
    path = config_file or Path(os.environ.get("RECSYS_CONFIG") or config_dir() / "recsys.yaml")
    if config_file is not None and not path.exists():
        raise ConfigError(f"config: {path} does not exist")
    yaml_data = read_yaml(path) if path.exists() else {}

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

    # the conventional names of these two win over nothing but an explicit flag
    for field, env in (
        ("pushgateway_url", "PUSHGATEWAY_URL"),
        ("mlflow_tracking_uri", "MLFLOW_TRACKING_URI"),
    ):
        if overrides.get(field) is None and os.environ.get(env):
            overrides[field] = os.environ[env]
    try:
        built = _Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"config: {field}: {err['msg']} (from {path}, RECSYS_* or flags)") from e
    settings = Settings.model_validate(built.model_dump())
    # relative file settings are relative to the directory of the settings file
    base = path.parent if path.exists() else config_dir()
    for name in ("quality_config", "feature_registry", "recall_config"):
        value: Path = getattr(settings, name)
        if not value.is_absolute():
            setattr(settings, name, base / value)
    return settings
