"""The offline DAG: extract_load -> clean -> features -> quality_gate -[passed]-> train ->
evaluate -> register -> sync_store; and ``recsys-sync``, which re-publishes a bundle."""
# no "from __future__ import annotations": KFP reads the real annotation objects

import json
from typing import Any

from kfp import dsl

from components import build_components
from pipelines.cluster import ClusterConfig

PIPELINE_NAME = "recsys-training"
SYNC_PIPELINE_NAME = "recsys-sync"
DEFAULT_TABLES = json.dumps(["users", "items", "orders", "events"])


def build_training_pipeline(image: str, cluster: ClusterConfig | None = None) -> Any:
    """The pipeline function, its components running in ``image``; with ``cluster``, every step
    mounts the data volume (and reads the source URL from its Secret)."""
    comps = build_components(image)

    def step(task: Any, name: str) -> Any:
        task.set_display_name(name)
        return cluster.apply(task) if cluster is not None else task

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
        as_of: str = "",
        cleaning_config: str = "{}",
        feature_registry: str = "{}",
        quality_config: str = "{}",
        pushgateway_url: str = "",
        store_url: str = "",
        fallback_url: str = "",
        recall_config: str = "{}",
        ranking_config: str = "{}",
        training_config: str = "{}",
        chain_config: str = "{}",
        evaluation_config: str = "{}",
        mlflow_tracking_uri: str = "",
        model_name: str = "recsys-ranker",
    ) -> None:
        extract = step(
            comps.extract_load(
                source_db=source_db,
                data_dir=data_dir,
                tables=tables,
                run_id=run_id,
                run_time=run_time,
                window_start=window_start,
                window_end=window_end,
                as_of=as_of,
            ),
            "extract_load",
        )
        clean = step(
            comps.clean(raw=extract.outputs["raw"], data_dir=data_dir, cleaning_config=cleaning_config),
            "clean",
        )
        feats = step(
            comps.features(
                cleaned=clean.outputs["cleaned"], data_dir=data_dir, feature_registry=feature_registry
            ),
            "features",
        )
        gate = step(
            comps.quality_gate(
                cleaned=clean.outputs["cleaned"],
                features=feats.outputs["features_out"],
                data_dir=data_dir,
                quality_config=quality_config,
                pushgateway_url=pushgateway_url,
            ),
            "quality_gate",
        )
        with dsl.If(gate.outputs["Output"] == True, name="quality-passed"):  # noqa: E712
            trained = step(
                comps.train(
                    cleaned=clean.outputs["cleaned"],
                    features=feats.outputs["features_out"],
                    data_dir=data_dir,
                    recall_config=recall_config,
                    ranking_config=ranking_config,
                    training_config=training_config,
                    chain_config=chain_config,
                    evaluation_config=evaluation_config,
                ),
                "train",
            )
            evaluated = step(
                comps.evaluate(
                    cleaned=clean.outputs["cleaned"], model=trained.outputs["model"], data_dir=data_dir
                ),
                "evaluate",
            )
            registered = step(
                comps.register(
                    features=feats.outputs["features_out"],
                    model=trained.outputs["model"],
                    summary=evaluated.outputs["summary"],
                    data_dir=data_dir,
                    mlflow_tracking_uri=mlflow_tracking_uri,
                    model_name=model_name,
                ),
                "register",
            )
            step(
                comps.sync_store(
                    bundle=registered.outputs["Output"],
                    data_dir=data_dir,
                    store_url=store_url,
                    fallback_url=fallback_url,
                    activate="auto",
                ),
                "sync_store",
            )

    return training_pipeline


def build_sync_pipeline(image: str) -> Any:
    """Re-publish an existing bundle's features to the online store (``--sync-only``)."""
    comps = build_components(image)

    @dsl.pipeline(name=SYNC_PIPELINE_NAME, description="Re-publish the latest bundle to the online store.")
    def sync_pipeline(
        bundle: str,
        data_dir: str = "/data",
        store_url: str = "",
        fallback_url: str = "",
    ) -> None:
        comps.sync_store(
            bundle=bundle, data_dir=data_dir, store_url=store_url, fallback_url=fallback_url, activate="true"
        ).set_display_name("sync_store")

    return sync_pipeline
