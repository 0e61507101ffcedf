"""KFP v2 components: thin ``@dsl.component`` shells over ``recsys.steps``.

The functions are plain; ``build_components(image)`` decorates them with the project image as
``base_image`` so the image comes from configuration, not from import-time state. The image
holds the installed project, so nothing is pip-installed at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kfp import dsl

from components.clean import clean
from components.evaluate import evaluate
from components.extract_load import extract_load
from components.features import features
from components.quality_gate import quality_gate
from components.register import register
from components.sync_store import sync_store
from components.train import train

STEP_FUNCTIONS = {
    "extract_load": extract_load,
    "clean": clean,
    "features": features,
    "quality_gate": quality_gate,
    "train": train,
    "evaluate": evaluate,
    "register": register,
    "sync_store": sync_store,
}


@dataclass(frozen=True)
class Components:
    extract_load: Any
    clean: Any
    features: Any
    quality_gate: Any
    train: Any
    evaluate: Any
    register: Any
    sync_store: Any


def build_components(image: str) -> Components:
    def make(func: Any) -> Any:
        return dsl.component(base_image=image, install_kfp_package=False)(func)

    return Components(**{name: make(func) for name, func in STEP_FUNCTIONS.items()})
