"""Step clean: the lake snapshot to cleaned, date-partitioned Parquet and a report."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.cdc.lake import PART_FILE, arrow_schema, file_sha256, write_parquet_atomic
from recsys.cdc.partitions import partition_keys, split_by_key
from recsys.cleaning.cleaner import clean_tables
from recsys.cleaning.config import CleaningConfig
from recsys.contracts import CONTRACTS
from recsys.errors import PipelineError
from recsys.steps.common import RUN_FILE, run_record, run_record_path, write_json


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


def write_partitioned(frame: pd.DataFrame, table: str, out_dir: Path, tag: str, now: datetime) -> int:
    """Write a cleaned table as ``<out>/<table>/dt=<day, month or year>/part-0.parquet`` like the lake."""
    data = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    (out_dir / table).mkdir(parents=True, exist_ok=True)
    written = 0
    for key, part in split_by_key(data, partition_keys(data[CONTRACTS[table].partition_column], now)):
        write_parquet_atomic(part, out_dir / table / f"dt={key}" / PART_FILE, tag)
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
    as_of = datetime.fromisoformat(manifest.get("as_of") or manifest["run_time"])
    frames = read_snapshot(manifest)
    cleaned, report = clean_tables(frames, config, now)
    partitions = {t: write_partitioned(df, t, cleaned_dir, run_id, now) for t, df in cleaned.items()}
    write_json(cleaned_dir / RUN_FILE, run_record(run_id, now, as_of))
    payload = report.to_dict()
    payload["partitions"] = partitions
    payload["run_id"] = run_id
    payload["cleaned_dir"] = str(cleaned_dir)
    payload["report_json"] = str(report_json)
    write_json(report_json, payload)
    write_json(run_record_path(data_dir, run_id, "clean"), payload)
    return payload


def read_cleaned(cleaned_dir: Path) -> dict[str, pd.DataFrame]:
    """Load the cleaned tables written by ``clean_step``."""
    frames: dict[str, pd.DataFrame] = {}
    for table in CONTRACTS:
        parts = sorted((cleaned_dir / table).glob(f"dt=*/{PART_FILE}"))
        if parts:
            frames[table] = pa.concat_tables([pq.read_table(p) for p in parts]).to_pandas()
        elif (cleaned_dir / table).exists():
            frames[table] = pd.DataFrame(columns=CONTRACTS[table].columns)
    return frames
