"""The offline DAG: extract_load -> clean -> features -> quality_gate -[passed]-> sync_store.

Later issues add train -> build indexes -> evaluate -> register between the gate and the sync.
"""
# no "from __future__ import annotations": KFP reads the real annotation objects

import json
from typing import Any

from kfp import dsl

from components import build_components

PIPELINE_NAME = "recsys-training"
SYNC_PIPELINE_NAME = "recsys-sync"
DEFAULT_TABLES = json.dumps(["users", "items", "orders", "events"])


def build_training_pipeline(image: str) -> Any:
    """The pipeline function, its components running in ``image``."""
    comps = build_components(image)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="CDC extract, cleaning, features and the data quality gate, then online-store sync.",
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
        feature_registry: str = "{}",
        quality_config: str = "{}",
        pushgateway_url: str = "",
        store_url: str = "",
        fallback_url: str = "",
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
        clean = comps.clean(
            raw=extract.outputs["raw"], data_dir=data_dir, cleaning_config=cleaning_config
        ).set_display_name("clean")
        feats = comps.features(
            cleaned=clean.outputs["cleaned"], data_dir=data_dir, feature_registry=feature_registry
        ).set_display_name("features")
        gate = comps.quality_gate(
            cleaned=clean.outputs["cleaned"],
            features=feats.outputs["features_out"],
            data_dir=data_dir,
            quality_config=quality_config,
            pushgateway_url=pushgateway_url,
        ).set_display_name("quality_gate")
        with dsl.If(gate.outputs["Output"] == True, name="quality-passed"):  # noqa: E712
            comps.sync_store(
                features=feats.outputs["features_out"],
                data_dir=data_dir,
                store_url=store_url,
                fallback_url=fallback_url,
            ).set_display_name("sync_store")

    return training_pipeline


def build_sync_pipeline(image: str) -> Any:
    """Re-publish an existing bundle's features to the online store (``--sync-only``)."""
    comps = build_components(image)

    @dsl.pipeline(name=SYNC_PIPELINE_NAME, description="Re-publish the latest bundle to the online store.")
    def sync_pipeline(
        bundle_features_uri: str,
        data_dir: str = "/data",
        store_url: str = "",
        fallback_url: str = "",
    ) -> None:
        features = dsl.importer(
            artifact_uri=bundle_features_uri, artifact_class=dsl.Dataset, reimport=False
        ).set_display_name("import_bundle")
        comps.sync_store(
            features=features.output, data_dir=data_dir, store_url=store_url, fallback_url=fallback_url
        ).set_display_name("sync_store")

    return sync_pipeline
