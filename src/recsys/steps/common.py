"""The offline pipeline's steps as plain functions over paths.

The KFP components in ``components/`` are thin shells over these: they pass parameters and
artifact paths in and log the returned metrics. Everything here is testable without KFP.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recsys.cdc.extract import extract_load
from recsys.cdc.lake import PART_FILE, Lake, arrow_schema, file_sha256, write_parquet_atomic
from recsys.cleaning.cleaner import clean_tables
from recsys.cleaning.config import CleaningConfig
from recsys.contracts import CONTRACTS
from recsys.db import create_engine
from recsys.errors import InvalidInput, PipelineError, RecsysError

ERROR_PREFIX = "recsys-error: "


@contextmanager
def step_guard() -> Iterator[None]:
    """Turn a RecsysError into one readable line and a non-zero exit (no traceback)."""
    try:
        yield
    except RecsysError as e:
        print(f"{ERROR_PREFIX}{e}", flush=True)
        sys.exit(2)


def parse_time(value: str | None, field: str) -> datetime | None:
    """ISO 8601 to naive UTC; empty means unset."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise InvalidInput(f"{field}: {value!r} is not an ISO 8601 timestamp") from e
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(now: datetime) -> str:
    """Sortable by time, unique across concurrent starts."""
    return f"{now:%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def run_record_path(data_dir: Path, run_id: str, step: str) -> Path:
    """Where each step leaves its summary, so a run can be inspected after the fact."""
    return data_dir / "runs" / run_id / f"{step}.json"


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


def read_snapshot(manifest: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Load every table of a lake snapshot, verifying that no partition changed since."""
    root = Path(manifest["lake_dir"])
    frames: dict[str, pd.DataFrame] = {}
    for table, parts in manifest["tables"].items():
        schema = arrow_schema(CONTRACTS[table])
        pieces = []
        for part in parts:
            path = root / part["path"]
            if not path.exists() or file_sha256(path) != part["sha256"]:
                raise PipelineError(f"clean: lake partition {path} changed since extract; re-run")
            pieces.append(pq.read_table(path, schema=schema))
        data = pa.concat_tables(pieces) if pieces else schema.empty_table()
        frames[table] = data.to_pandas()
    return frames


def write_partitioned(frame: pd.DataFrame, table: str, out_dir: Path, tag: str) -> int:
    """Write a cleaned table as ``<out>/<table>/dt=YYYY-MM-DD/part-0.parquet``; partitions written."""
    data = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    column = CONTRACTS[table].partition_column
    if data.num_rows == 0:
        (out_dir / table).mkdir(parents=True, exist_ok=True)
        return 0
    days = pc.strftime(data[column], format="%Y-%m-%d")
    written = 0
    for day in sorted(set(days.to_pylist())):
        part = data.filter(pc.equal(days, day))
        write_parquet_atomic(part, out_dir / table / f"dt={day}" / PART_FILE, tag)
        written += 1
    return written


def clean_step(
    *,
    raw_manifest: Path,
    config: CleaningConfig,
    data_dir: Path,
    cleaned_dir: Path,
    report_json: Path,
) -> dict[str, Any]:
    """Clean the lake snapshot into partitioned Parquet; writes the report by reason."""
    manifest = json.loads(raw_manifest.read_text())
    run_id = manifest["run_id"]
    now = datetime.fromisoformat(manifest["run_time"])
    frames = read_snapshot(manifest)
    cleaned, report = clean_tables(frames, config, now)
    partitions = {t: write_partitioned(df, t, cleaned_dir, run_id) for t, df in cleaned.items()}
    payload = report.to_dict()
    payload["partitions"] = partitions
    payload["run_id"] = run_id
    payload["cleaned_dir"] = str(cleaned_dir)
    payload["report_json"] = str(report_json)
    write_json(report_json, payload)
    write_json(run_record_path(data_dir, run_id, "clean"), payload)
    return payload
