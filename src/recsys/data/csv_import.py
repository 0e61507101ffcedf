"""Bring-your-own data: import users/items/events CSV files in the documented schema.

The schema and the error format are documented in ``docs/DATA_CONTRACTS.md``. Every file is
validated completely before anything is written, so a bad file never leaves a partial import.
Events may reference users/items that are neither in the files nor in the database: the cleaner
counts such orphans later instead of the importer refusing them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from recsys.contracts import CONTRACTS, EVENT_TYPES, ITEM_STATUSES
from recsys.data.loader import write_tables
from recsys.errors import InvalidInput

SOURCE = "csv"
# unix seconds beyond this are almost surely milliseconds (year ~5138), not a real time
_MAX_UNIX_SECONDS = 1e11
# a time of day followed by Z or +hh[:mm] / -hh[:mm]; a bare date's "-01" is no offset
_OFFSET = r"(?i)[T ]\d{2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"


@dataclass(frozen=True)
class Field:
    """One CSV column: how a cell is parsed and checked."""

    name: str
    kind: str = "str"  # str | tags | timestamp | number | integer | choice
    required: bool = False  # the cell must not be empty
    optional_column: bool = False  # the header may omit the column
    non_negative: bool = False
    choices: tuple[str, ...] = ()
    default: str | None = None  # used for an empty cell


SCHEMAS: dict[str, tuple[Field, ...]] = {
    "users": (
        Field("user_id", required=True),
        Field("industry"),
        Field("region"),
        Field("created_at", "timestamp", required=True),
        Field("updated_at", "timestamp", optional_column=True),
    ),
    "items": (
        Field("item_id", required=True),
        Field("title", required=True),
        Field("description"),
        Field("category", required=True),
        Field("industry"),
        Field("tags", "tags"),
        Field("price", "number", non_negative=True),
        Field("status", "choice", choices=ITEM_STATUSES, default="active"),
        Field("created_at", "timestamp", required=True),
        Field("updated_at", "timestamp", optional_column=True),
    ),
    "events": (
        Field("event_id", required=True),
        Field("user_id", required=True),
        Field("item_id", required=True),
        Field("event_type", "choice", required=True, choices=EVENT_TYPES),
        Field("ts", "timestamp", required=True),
        Field("request_id", optional_column=True),
        Field("position", "integer", optional_column=True, non_negative=True),
        Field("value", "number", optional_column=True),
        Field("scene", optional_column=True),
    ),
}


class CsvImportError(InvalidInput):
    """Validation failed; ``errors`` holds every problem, the message only the first."""

    def __init__(self, errors: list[str]) -> None:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(errors[0] + more)
        self.errors = errors


class _File:
    """The errors of one file, kept sortable by (line, column) so the first one is reported."""

    def __init__(self, name: str, fields: tuple[Field, ...]) -> None:
        self.name = name
        self.order = {f.name: i for i, f in enumerate(fields)}
        self.errors: list[tuple[int, int, str]] = []

    def add(self, line: int, field: str, message: str) -> None:
        rank = self.order.get(field, -1)
        self.errors.append((line, rank, f"{self.name}:{line}: {field}: {message}"))

    def add_file(self, message: str) -> None:
        self.errors.append((0, -1, f"{self.name}: {message}"))

    def sorted(self) -> list[str]:
        return [text for *_, text in sorted(self.errors, key=lambda e: (e[0], e[1]))]


def _naive_utc(moment: datetime | None) -> datetime:
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _rows(path: Path, out: _File) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, cells) per record; multi-line quoted cells keep numbering right."""
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as e:
        out.add_file(f"cannot read {path}: {e.strerror}")
        return
    with fh:
        reader = csv.reader(fh)
        start = 1
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield start, row
                start = reader.line_num + 1
        except csv.Error as e:
            out.add(reader.line_num, "row", f"malformed CSV: {e}")
        except UnicodeDecodeError as e:
            out.add(start, "row", f"not UTF-8: {e.reason}")


def _read(path: Path, table: str, out: _File) -> tuple[pd.DataFrame, np.ndarray] | None:
    """The cells as a stripped string frame plus each row's line number; None on header errors."""
    if not path.is_file():
        out.add_file(f"file not found: {path}")
        return None
    fields = SCHEMAS[table]
    rows = _rows(path, out)
    first = next(rows, None)
    if first is None:
        if not out.errors:
            out.add(1, "header", "file is empty (a header row is required)")
        return None
    header = [h.strip() for h in first[1]]
    known = {f.name for f in fields}
    needed = [f.name for f in fields if not f.optional_column]
    dupes = sorted({h for h in header if header.count(h) > 1})
    unknown = [h for h in header if h not in known]
    missing = [n for n in needed if n not in header]
    for what, names in (("duplicate", dupes), ("unknown", unknown), ("missing", missing)):
        if names:
            listed = ", ".join(n or "''" for n in names)
            out.add(first[0], "header", f"{what} column(s) {listed}")
    if dupes or unknown or missing:
        return None
    lines: list[int] = []
    cells: list[list[str]] = []
    for line, row in rows:
        if len(row) != len(header):
            out.add(line, "row", f"has {len(row)} field(s), the header has {len(header)}")
            continue
        lines.append(line)
        cells.append([c.strip() for c in row])
    frame = pd.DataFrame(cells, columns=header, dtype=object)
    return frame.reindex(columns=[f.name for f in fields], fill_value=""), np.array(lines)


def _timestamps(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(naive UTC datetimes, out-of-range mask) from ISO 8601 or unix seconds cells."""
    seconds = pd.to_numeric(raw, errors="coerce")
    too_big = seconds.abs() > _MAX_UNIX_SECONDS
    text = raw.where(seconds.isna())
    # parsed in two groups: pandas applies an earlier cell's offset to later naive cells
    aware = text.str.contains(_OFFSET, na=False)
    iso = pd.concat(
        [
            pd.to_datetime(text[aware], format="ISO8601", utc=True, errors="coerce"),
            pd.to_datetime(text[~aware], format="ISO8601", utc=True, errors="coerce"),
        ]
    ).reindex(raw.index)
    # only the numeric cells: pandas casts NaN cells to int64 under errstate(over="raise"), which
    # raised FloatingPointError now and then on a column of ISO strings (seen 2026-12-04)
    numeric = seconds.notna() & ~too_big
    unix = pd.to_datetime(seconds[numeric], unit="s", utc=True).reindex(raw.index)
    parsed = iso.fillna(unix).dt.tz_localize(None)
    return parsed, too_big


def _parse_column(field: Field, raw: pd.Series, max_len: int | None) -> tuple[pd.Series, pd.Series]:
    """(parsed values, per-row error message or None)."""
    empty = raw == ""
    err = pd.Series(None, index=raw.index, dtype=object)
    value: pd.Series = raw.where(~empty, None)
    if field.kind == "timestamp":
        value, too_big = _timestamps(raw)
        bad = ~empty & value.isna()
        err[bad] = raw[bad].map(lambda s: f"{s!r} is not a timestamp")
        err[too_big] = raw[too_big].map(lambda s: f"{s} is out of range for unix seconds")
    elif field.kind in ("number", "integer"):
        number = pd.to_numeric(raw.where(~empty), errors="coerce").astype(float)
        # 'nan' and 'inf' parse as floats but are no usable quantity
        bad = ~empty & ~np.isfinite(number)
        noun = "an integer" if field.kind == "integer" else "a number"
        err[bad] = raw[bad].map(lambda s: f"{s!r} is not {noun}")
        if field.kind == "integer":
            frac = ~bad & ~empty & (number % 1 != 0)
            err[frac] = raw[frac].map(lambda s: f"{s!r} is not an integer")
            bad |= frac
        if field.non_negative:
            neg = ~bad & ~empty & (number < 0)
            err[neg] = raw[neg].map(lambda s: f"{s} is negative")
        ok = ~empty & ~bad
        cast = int if field.kind == "integer" else float
        # built cell by cell: a masked assignment would upcast the ints back to floats
        value = pd.Series(
            [cast(x) if keep else None for x, keep in zip(number, ok, strict=True)],
            index=raw.index,
            dtype=object,
        )
    elif field.kind == "choice":
        if field.default is not None:
            value = raw.where(~empty, field.default)
        bad = value.notna() & ~value.isin(field.choices)
        allowed = ", ".join(field.choices)
        err[bad] = raw[bad].map(lambda s: f"{s!r} is not one of {allowed}")
    elif field.kind == "tags":
        # '|' separates tags; blanks around and between separators carry no meaning
        split = raw.str.split("|").map(lambda ts: [t.strip() for t in ts if t.strip()])
        value = split.map(lambda ts: "|".join(dict.fromkeys(ts)) or None)
    if max_len is not None:
        long = err.isna() & (raw.str.len() > max_len)
        err[long] = raw[long].map(lambda s: f"{len(s)} characters, at most {max_len} allowed")
    if field.required:
        err[empty] = "empty"
    return value, err


def _validate(table: str, frame: pd.DataFrame, lines: np.ndarray, out: _File) -> pd.DataFrame:
    contract = CONTRACTS[table]
    parsed: dict[str, pd.Series] = {}
    for field in SCHEMAS[table]:
        max_len = getattr(contract.table.c[field.name].type, "length", None)
        value, err = _parse_column(field, frame[field.name], max_len)
        for pos in np.flatnonzero(err.notna().to_numpy()):
            out.add(int(lines[pos]), field.name, err.iloc[pos])
        parsed[field.name] = value
    pk = contract.primary_key
    ids = frame[pk]
    dup = (ids != "") & ids.duplicated(keep="first")
    first_line = pd.Series(lines, index=frame.index).groupby(ids).transform("first")
    for pos in np.flatnonzero(dup.to_numpy()):
        out.add(
            int(lines[pos]),
            pk,
            f"duplicate {ids.iloc[pos]!r} (first on line {int(first_line.iloc[pos])})",
        )
    if "updated_at" in parsed and "created_at" in parsed:
        before = parsed["updated_at"] < parsed["created_at"]
        for pos in np.flatnonzero(before.fillna(False).to_numpy()):
            out.add(int(lines[pos]), "updated_at", "is before created_at")
    return pd.DataFrame(parsed, index=frame.index)


def read_csv_files(
    users: Path | None = None,
    items: Path | None = None,
    events: Path | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, pd.DataFrame]:
    """Validate and parse the given files into contract frames; nothing touches a database.

    Raises ``CsvImportError`` (an ``InvalidInput``) naming the first problem as
    ``file:line: field: message`` plus "(and N more)"; ``.errors`` lists them all.
    """
    paths = {"users": users, "items": items, "events": events}
    given = {t: Path(p) for t, p in paths.items() if p is not None}
    if not given:
        raise InvalidInput("csv import: no file given (users, items or events)")
    stamp = pd.Timestamp(_naive_utc(now))
    frames: dict[str, pd.DataFrame] = {}
    errors: list[str] = []
    for table, path in given.items():
        out = _File(path.name, SCHEMAS[table])
        read = _read(path, table, out)
        if read is not None:
            frames[table] = _validate(table, *read, out)
        errors.extend(out.sorted())
    if errors:
        raise CsvImportError(errors)
    for table, frame in frames.items():
        if "updated_at" in frame.columns:
            frame["updated_at"] = frame["updated_at"].fillna(stamp)
        else:
            frame["updated_at"] = stamp
        if table == "events":
            # offsets were converted at parse time, so the cleaner must not convert again
            frame["ts_offset_minutes"] = None
            frame["source"] = SOURCE
    return frames


def import_csv(
    engine: Engine,
    users: Path | None = None,
    items: Path | None = None,
    events: Path | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, int]:
    """Validate every given file, then upsert them by primary key; rows written per table.

    ``now`` (default: the current time) fills ``updated_at`` where the file has none.
    """
    return write_tables(engine, read_csv_files(users, items, events, now=now))
