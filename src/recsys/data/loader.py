"""Write contract-shaped DataFrames into the source database, all tables in one transaction."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from recsys.contracts import CONTRACTS
from recsys.db import create_schema, upsert_rows, write_error

# parents first, so a reader of a half-loaded database never sees orphans it could have avoided
LOAD_ORDER = ("users", "items", "orders", "events")


def _records(frame: pd.DataFrame, table: str) -> list[dict[str, Any]]:
    contract = CONTRACTS[table]
    missing = [c for c in contract.required_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{table}: frame lacks required column(s) {', '.join(missing)}")
    out = frame.reindex(columns=contract.columns)
    columns: dict[str, list[Any]] = {}
    for name in contract.columns:
        col = out[name]
        if name in contract.datetime_columns:
            col = pd.to_datetime(col, utc=True).dt.tz_localize(None)
        # object dtype turns numpy scalars into Python ones; None marks SQL NULL
        columns[name] = col.astype(object).where(col.notna(), None).tolist()
    names = contract.columns
    return [dict(zip(names, row, strict=True)) for row in zip(*(columns[n] for n in names), strict=True)]


def write_tables(engine: Engine, frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Create missing tables and upsert every frame by primary key; rows written per table.

    All tables are written in one transaction: a failure leaves the database as it was.
    """
    create_schema(engine)
    records = {t: _records(frames[t], t) for t in LOAD_ORDER if t in frames}
    written: dict[str, int] = {}
    try:
        with engine.begin() as conn:
            for table, rows in records.items():
                written[table] = upsert_rows(conn, table, rows)
    except SQLAlchemyError as e:
        raise write_error(e) from e
    return written
