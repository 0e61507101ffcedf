"""Compile the pipelines to KFP IR YAML (what ``kfp.Client`` or the KFP UI accepts)."""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

from pipelines.cluster import ClusterConfig
from pipelines.training import build_training_pipeline


def compile_training(image: str, output: Path, cluster: ClusterConfig | None = None) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_training_pipeline(image, cluster), package_path=str(output))
    return output
