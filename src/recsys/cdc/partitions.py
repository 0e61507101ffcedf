"""Partition keys of the lake and the cleaned tables: a day, a month or a year of one column.

A row's key is the day (``YYYY-MM-DD``) of the table's partition column; the month
(``YYYY-MM``) once that month ended ``DAILY_DAYS`` before the run time; the year (``YYYY``) once
that year ended ``MONTHLY_DAYS`` before it. Late rows land in recent days, so daily partitions
keep an incremental run's rewrites small, while history stays a few files: MovieLens' 22 years
were 7,110 daily files (83 now), and every step pays per file (open, checksum, fsync).

The key of a row depends on the run time, so a later run folds finer partitions of a period
that has closed into its coarser one (``Lake.compact``). Edges fall on month and year starts, so
a day or month lies entirely on one side of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DAILY_DAYS = 35  # late rows are rare past a month; a closed month is one partition
MONTHLY_DAYS = 400  # ... and a year that ended over a month ago is one partition


def edges(now: datetime) -> tuple[datetime, datetime]:
    """(year edge, month edge): rows before the first are yearly, before the second monthly."""
    m = now - timedelta(days=DAILY_DAYS)
    y = now - timedelta(days=MONTHLY_DAYS)
    return datetime(y.year, 1, 1), datetime(m.year, m.month, 1)


def partition_keys(column: pa.ChunkedArray | pa.Array, now: datetime) -> pa.ChunkedArray | pa.Array:
    """The partition key of every timestamp of ``column`` at run time ``now``."""
    year_edge, month_edge = (pa.scalar(e, type=column.type) for e in edges(now))  # us or ns
    day = pc.strftime(column, format="%Y-%m-%d")
    month = pc.utf8_slice_codeunits(day, 0, 7)
    year = pc.utf8_slice_codeunits(day, 0, 4)
    return pc.if_else(pc.less(column, year_edge), year, pc.if_else(pc.less(column, month_edge), month, day))


def coarsest_key(key: str, now: datetime) -> str:
    """The key a partition's period (a day, month or year key) belongs under at run time ``now``."""
    start = {4: f"{key}-01-01", 7: f"{key}-01", 10: key}[len(key)]
    year_edge, month_edge = (f"{e:%Y-%m-%d}" for e in edges(now))
    if start < year_edge:
        return key[:4]
    if start < month_edge:
        return key[:7]
    return key


def split_by_key(table: pa.Table, keys: pa.ChunkedArray | pa.Array) -> Iterator[tuple[str, pa.Table]]:
    """``(key, rows)`` per distinct key, keys ascending, rows in their input order.

    One sort instead of a filter per key (a filter per key over the whole table was quadratic).
    """
    if table.num_rows == 0:
        return
    order = pc.sort_indices(keys)  # stable, so rows keep their (updated_at) order within a key
    sorted_keys = keys.take(order).to_numpy(zero_copy_only=False)
    table = table.take(order)
    starts = [0, *(np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1).tolist(), len(sorted_keys)]
    for start, end in zip(starts, starts[1:], strict=False):
        yield str(sorted_keys[start]), table.slice(start, end - start)
