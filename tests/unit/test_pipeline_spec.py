"""The compiled KFP IR and the components' python functions, without any runner."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from kfp import dsl
from sample_data import small_source_frames

from components import build_components
from pipelines.compile import compile_training

IMAGE = "registry.example.com/recsys-python:test"


def test_compiled_ir_has_the_dag_and_the_project_image(tmp_path: Path) -> None:
    path = compile_training(IMAGE, tmp_path / "p.yaml")
    ir = yaml.safe_load(path.read_text())
    assert ir["pipelineInfo"]["name"] == "recsys-training"
    tasks = ir["root"]["dag"]["tasks"]
    assert set(tasks) == {"extract-load", "clean", "features", "quality-gate", "condition-1"}
    assert tasks["clean"]["dependentTasks"] == ["extract-load"]
    assert tasks["features"]["dependentTasks"] == ["clean"]
    assert sorted(tasks["quality-gate"]["dependentTasks"]) == ["clean", "features"]
    # the gate: sync_store runs only inside the condition on the gate's verdict
    gate = tasks["condition-1"]
    assert gate["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--quality-gate-Output'] == true"
    )
    inner = ir["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inner) == {"train", "evaluate", "register", "sync-store"}
    assert inner["evaluate"]["dependentTasks"] == ["train"]
    assert sorted(inner["register"]["dependentTasks"]) == ["evaluate", "train"]
    assert inner["sync-store"]["dependentTasks"] == ["register"]
    raw_in = tasks["clean"]["inputs"]["artifacts"]["raw"]["taskOutputArtifact"]
    assert raw_in == {"outputArtifactKey": "raw", "producerTask": "extract-load"}
    executors = ir["deploymentSpec"]["executors"]
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == IMAGE
        # the image holds the installed project: nothing is pip-installed at run time
        assert "pip install" not in " ".join(container["command"])
    params = ir["root"]["inputDefinitions"]["parameters"]
    assert {"source_db", "data_dir", "window_start", "window_end", "cleaning_config"} <= set(params)
    assert {"feature_registry", "quality_config", "pushgateway_url", "store_url"} <= set(params)
    outputs = ir["components"]["comp-extract-load"]["outputDefinitions"]["artifacts"]
    assert outputs["raw"]["artifactType"]["schemaTitle"] == "system.Dataset"
    assert outputs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"


def test_extract_component_function_writes_its_artifacts(tmp_path: Path) -> None:
    """Tier 1 of the component tests: the python function with artifacts that have a path."""
    from recsys.data.loader import write_tables
    from recsys.db import create_engine

    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = create_engine(url, create_dirs=True)
    write_tables(engine, small_source_frames())
    engine.dispose()
    comps = build_components(IMAGE)
    raw = dsl.Dataset(uri=str(tmp_path / "raw.json"))
    run_metrics = dsl.Artifact(uri=str(tmp_path / "metrics.json"))
    metrics = dsl.Metrics(uri=str(tmp_path / "m"))
    comps.extract_load.python_func(
        source_db=url,
        data_dir=str(tmp_path / "d"),
        tables=json.dumps(["users", "items", "events"]),
        run_id="r1",
        run_time="2026-03-05T00:00:00",
        window_start="",
        window_end="",
        as_of="",
        raw=raw,
        run_metrics=run_metrics,
        metrics=metrics,
    )
    manifest = json.loads(Path(raw.path).read_text())
    assert manifest["run_id"] == "r1" and manifest["run_time"] == "2026-03-05T00:00:00"
    assert sum(p["rows"] for p in manifest["tables"]["events"]) == 12
    first = Path(manifest["lake_dir"]) / manifest["tables"]["events"][0]["path"]
    assert pq.read_table(first).num_rows > 0
    assert json.loads(Path(run_metrics.path).read_text())["rows_extracted"] == 23
    assert metrics.metadata["rows_extracted"] == 23
    assert (tmp_path / "d/runs/r1/extract_load.json").exists()


def test_component_turns_a_domain_error_into_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    comps = build_components(IMAGE)
    with pytest.raises(SystemExit) as exit_info:
        comps.extract_load.python_func(
            source_db="oracle://x",
            data_dir=str(tmp_path),
            tables="[]",
            run_id="",
            run_time="",
            window_start="",
            window_end="",
            as_of="",
            raw=dsl.Dataset(uri=str(tmp_path / "r")),
            run_metrics=dsl.Artifact(uri=str(tmp_path / "m")),
            metrics=dsl.Metrics(uri=str(tmp_path / "x")),
        )
    assert exit_info.value.code == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "recsys-error: source_db: unsupported URL scheme 'oracle' in oracle://x "
        "(supported: mysql, postgres, postgresql, sqlite)"
    ]


def test_sync_only_pipeline_republishes_a_bundle(tmp_path: Path) -> None:
    from kfp import compiler

    from pipelines.training import build_sync_pipeline

    path = tmp_path / "sync.yaml"
    compiler.Compiler().compile(build_sync_pipeline(IMAGE), package_path=str(path))
    ir = yaml.safe_load(path.read_text())
    tasks = ir["root"]["dag"]["tasks"]
    assert set(tasks) == {"sync-store"}
    assert tasks["sync-store"]["inputs"]["parameters"]["activate"]["runtimeValue"]["constant"] == "true"
