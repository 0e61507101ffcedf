"""Step extract_load: CDC into the lake, a snapshot manifest and the run metrics."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from recsys.cdc.extract import extract_load
from recsys.cdc.lake import Lake
from recsys.contracts import events as events_table
from recsys.db import create_engine
from recsys.errors import InvalidInput, SourceError
from recsys.steps.common import parse_time, run_record_path, write_json

LATEST = "latest"


def check_as_of(value: str | None, flag: str = "--as-of") -> str:
    """``""`` (the run time), ``latest`` or an ISO 8601 time; InvalidInput naming ``flag``."""
    text = (value or "").strip()
    if text and text != LATEST:
        try:
            parse_time(text, flag)
        except InvalidInput as e:
            raise InvalidInput(f"{flag}: {text!r} is neither 'latest' nor an ISO 8601 time") from e
    return text


def newest_event(engine: Engine) -> datetime | None:
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(events_table.c.ts))).scalar()
    except SQLAlchemyError as e:
        msg = str(getattr(e, "orig", e)).strip().splitlines()[0]
        raise SourceError(f"source_db: reading the newest event failed: {msg}") from e


def resolve_as_of(value: str | None, engine: Engine, now: datetime) -> datetime:
    """The run's as-of time: ``now`` when unset, the source's newest event for ``latest``."""
    text = check_as_of(value)
    if not text:
        return now
    if text != LATEST:
        return parse_time(text, "--as-of")  # type: ignore[return-value]
    newest = newest_event(engine)
    if newest is None:
        raise InvalidInput("--as-of latest: the source has no events")
    if isinstance(newest, str):  # SQLite hands back text for a max() over a DateTime column
        newest = datetime.fromisoformat(newest)
    # a future-dated event is a data error that cleaning clamps to the ingest time
    return min(newest.replace(tzinfo=None), now)


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
    as_of: str | None = None,
    metrics_json: Path,
) -> dict[str, Any]:
    """CDC into ``<data_dir>/lake``; writes the snapshot manifest and the run metrics."""
    engine = create_engine(source_db)
    try:
        as_of_time = resolve_as_of(as_of, engine, now)
        result = extract_load(
            engine,
            data_dir / "lake",
            tables=tables,
            run_id=run_id,
            now=now,
            window_start=window_start,
            window_end=window_end,
            as_of=as_of_time,
        )
    finally:
        engine.dispose()
    lake = Lake(data_dir / "lake")
    manifest = {
        "lake_dir": str(lake.root.resolve()),
        "run_id": run_id,
        "run_time": now.isoformat(),
        "as_of": as_of_time.isoformat(),
        "tables": lake.manifest(tables),
    }
    write_json(raw_manifest, manifest)
    metrics = result.to_dict()
    metrics["as_of"] = as_of_time.isoformat()
    metrics["raw_manifest"] = str(raw_manifest)
    metrics["metrics_json"] = str(metrics_json)
    write_json(metrics_json, metrics)
    write_json(run_record_path(data_dir, run_id, "extract_load"), metrics)
    return metrics
