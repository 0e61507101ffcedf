"""The offline training DAG: extract_load -> clean (later: features -> quality -> train ...)."""
# no "from __future__ import annotations": KFP reads the real annotation objects

import json
from typing import Any

from kfp import dsl

from components import build_components

PIPELINE_NAME = "recsys-training"
DEFAULT_TABLES = json.dumps(["users", "items", "orders", "events"])


def build_training_pipeline(image: str) -> Any:
    """The pipeline function, its components running in ``image``."""
    comps = build_components(image)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="CDC extract and cleaning of the marketplace source tables.",
    )
    def training_pipeline(
        source_db: str = "",
        data_dir: str = "/data",
        tables: str = DEFAULT_TABLES,
        run_id: str = "",
        run_time: str = "",
        window_start: str = "",
        window_end: str = "",
        cleaning_config: str = "{}",
    ) -> None:
        extract = comps.extract_load(
            source_db=source_db,
            data_dir=data_dir,
            tables=tables,
            run_id=run_id,
            run_time=run_time,
            window_start=window_start,
            window_end=window_end,
        ).set_display_name("extract_load")
        comps.clean(
            raw=extract.outputs["raw"],
            data_dir=data_dir,
            cleaning_config=cleaning_config,
        ).set_display_name("clean")

    return training_pipeline
