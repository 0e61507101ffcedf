"""Write contract-shaped DataFrames into the source database."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from recsys.contracts import CONTRACTS
from recsys.db import create_schema, upsert_rows

# parents first, so a reader of a half-loaded database never sees orphans it could have avoided
LOAD_ORDER = ("users", "items", "orders", "events")


def _records(frame: pd.DataFrame, table: str) -> list[dict[str, Any]]:
    cols = CONTRACTS[table].columns
    missing = [c for c in CONTRACTS[table].required_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{table}: frame lacks required column(s) {', '.join(missing)}")
    out = frame.reindex(columns=cols)
    for c in CONTRACTS[table].datetime_columns:
        out[c] = pd.to_datetime(out[c], utc=True).dt.tz_localize(None)
    records = out.astype(object).to_dict("records")
    for rec in records:
        for k, v in rec.items():
            if v is None:
                continue
            if isinstance(v, float) and math.isnan(v):
                rec[k] = None
            elif v is pd.NaT:
                rec[k] = None
            elif isinstance(v, pd.Timestamp):
                rec[k] = v.to_pydatetime()
    return records


def write_tables(engine: Engine, frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Create missing tables and upsert every frame by primary key; rows written per table."""
    create_schema(engine)
    written: dict[str, int] = {}
    for table in LOAD_ORDER:
        if table in frames:
            written[table] = upsert_rows(engine, table, _records(frames[table], table))
    return written
