"""Find the bundle a model alias or version points at, locally or downloaded from MLflow."""

from __future__ import annotations

from pathlib import Path

from recsys.models.registry import ModelRegistry
from recsys.models.tracking import tracking_uri
from recsys.settings import Settings
from recsys.steps.sync import bundles_dir


def model_registry(settings: Settings) -> ModelRegistry:
    data_dir = settings.data_dir.resolve()
    return ModelRegistry(tracking_uri(data_dir, settings.mlflow_tracking_uri), model_name=settings.model_name)


def resolve_bundle(settings: Settings, ref: str = "champion") -> Path:
    """The bundle of ``ref`` (alias or version): the local copy, else a download from MLflow."""
    info = model_registry(settings).resolve(ref)
    local = bundles_dir(settings.data_dir.resolve()) / str(info.bundle_version)
    if (local / "manifest.json").exists():
        return local
    return model_registry(settings).download_bundle(ref, local)
