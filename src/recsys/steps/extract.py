"""Step extract_load: CDC into the lake, a snapshot manifest and the run metrics."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from recsys.cdc.extract import extract_load
from recsys.cdc.lake import Lake
from recsys.db import create_engine
from recsys.steps.common import run_record_path, write_json


def extract_step(
    *,
    source_db: str,
    data_dir: Path,
    tables: list[str],
    run_id: str,
    now: datetime,
    window_start: datetime | None,
    window_end: datetime | None,
    raw_manifest: Path,
    metrics_json: Path,
) -> dict[str, Any]:
    """CDC into ``<data_dir>/lake``; writes the snapshot manifest and the run metrics."""
    engine = create_engine(source_db)
    try:
        result = extract_load(
            engine,
            data_dir / "lake",
            tables=tables,
            run_id=run_id,
            now=now,
            window_start=window_start,
            window_end=window_end,
        )
    finally:
        engine.dispose()
    lake = Lake(data_dir / "lake")
    manifest = {
        "lake_dir": str(lake.root.resolve()),
        "run_id": run_id,
        "run_time": now.isoformat(),
        "tables": lake.manifest(tables),
    }
    write_json(raw_manifest, manifest)
    metrics = result.to_dict()
    metrics["raw_manifest"] = str(raw_manifest)
    metrics["metrics_json"] = str(metrics_json)
    write_json(metrics_json, metrics)
    write_json(run_record_path(data_dir, run_id, "extract_load"), metrics)
    return metrics
