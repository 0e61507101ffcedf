"""CDC extract_load against real SQLite and PostgreSQL sources (one suite, both backends)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sample_data import T0, small_source_frames

from recsys.cdc import lake as lake_mod
from recsys.cdc.extract import extract_load
from recsys.cdc.watermarks import WatermarkStore, lake_lock
from recsys.contracts import events, items
from recsys.data.loader import write_tables
from recsys.db import create_engine
from recsys.errors import ConfigError, PipelineError, SourceError

NOW = datetime(2026, 3, 5)
TABLES = ["users", "items", "orders", "events"]


@pytest.fixture
def source(source_url: str) -> sa.Engine:
    engine = create_engine(source_url, create_dirs=True)
    write_tables(engine, small_source_frames())
    yield engine
    engine.dispose()


def _run(engine: sa.Engine, lake: Path, run_id: str, **kw: object):
    return extract_load(engine, lake, tables=TABLES, run_id=run_id, now=NOW, **kw)


def _lake_bytes(lake: Path) -> dict[str, bytes]:
    return {p.relative_to(lake).as_posix(): p.read_bytes() for p in sorted((lake / "raw").rglob("*.parquet"))}


def test_first_run_extracts_everything_into_date_partitions(source: sa.Engine, tmp_path: Path) -> None:
    result = _run(source, tmp_path / "lake", "r1")
    assert {t: s.rows_extracted for t, s in result.tables.items()} == {
        "users": 5,
        "items": 6,
        "orders": 0,
        "events": 12,
    }
    parts = sorted((tmp_path / "lake/raw/events").glob("dt=*"))
    assert [p.name for p in parts] == ["dt=2026-03-01", "dt=2026-03-02", "dt=2026-03-03", "dt=2026-03-04"]
    rows = sum(pq.read_table(p / "part-0.parquet").num_rows for p in parts)
    assert rows == 12
    assert result.tables["events"].watermark_after == (T0 + timedelta(hours=77)).isoformat()
    assert result.tables["events"].watermark_lag_seconds == (NOW - (T0 + timedelta(hours=77))).total_seconds()


def test_second_run_without_changes_extracts_nothing(source: sa.Engine, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _run(source, lake, "r1")
    before, marks = _lake_bytes(lake), WatermarkStore(lake).load()
    result = _run(source, lake, "r2")
    assert result.rows_extracted == 0
    assert _lake_bytes(lake) == before
    assert WatermarkStore(lake).load() == marks
    assert not (lake / "_backup").exists()


def test_updated_rows_are_extracted_by_primary_key(source: sa.Engine, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _run(source, lake, "r1")
    later = T0 + timedelta(days=3)
    with source.begin() as conn:
        for item_id, price in (("i0", 99.0), ("i1", 98.0), ("i4", 97.0)):
            conn.execute(
                items.update().where(items.c.item_id == item_id).values(price=price, updated_at=later)
            )
    result = _run(source, lake, "r2")
    assert result.rows_extracted == 3
    assert result.tables["items"].rows_updated == 3 and result.tables["items"].rows_new == 0
    stored = pd.concat(pq.read_table(p).to_pandas() for p in (lake / "raw/items").rglob("*.parquet"))
    assert len(stored) == 6 and stored["item_id"].is_unique
    assert dict(zip(stored.item_id, stored.price, strict=True))["i4"] == 97.0
    # the partitions that were replaced are kept under the run id
    backups = sorted(p.parent.name for p in (lake / "_backup/r2/items").rglob("*.parquet"))
    assert backups == ["dt=2026-03-01", "dt=2026-03-02"]
    assert _run(source, lake, "r3").rows_extracted == 0


def test_late_row_with_the_watermark_timestamp_is_not_missed(source: sa.Engine, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = _run(source, lake, "r1")
    mark = datetime.fromisoformat(first.tables["events"].watermark_after)
    with source.begin() as conn:
        conn.execute(
            events.insert().values(
                event_id="e999",
                user_id="u1",
                item_id="i1",
                event_type="click",
                ts=mark,
                source="app",
                updated_at=mark,
            )
        )
    result = _run(source, lake, "r2")
    assert result.tables["events"].rows_new == 1 and result.rows_extracted == 1


def test_rerunning_a_window_is_byte_identical(source: sa.Engine, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _run(source, lake, "r1")
    before, marks = _lake_bytes(lake), WatermarkStore(lake).load()
    result = _run(source, lake, "r2", window_start=T0 - timedelta(days=1), window_end=NOW)
    assert result.tables["events"].rows_fetched == 12
    assert result.rows_extracted == 0
    assert _lake_bytes(lake) == before
    assert WatermarkStore(lake).load() == marks


def test_failed_write_leaves_the_old_partition_and_watermark(
    source: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    _run(source, lake, "r1")
    before, marks = _lake_bytes(lake), WatermarkStore(lake).load()
    with source.begin() as conn:
        conn.execute(items.update().values(price=1.0, updated_at=T0 + timedelta(days=4)))

    def broken_write(table: object, where: object, **kw: object) -> None:
        Path(str(where)).write_bytes(b"half a parquet file")
        raise OSError("disk full")

    monkeypatch.setattr(lake_mod.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        _run(source, lake, "r2")
    assert _lake_bytes(lake) == before
    assert not list((lake / "raw").rglob("*.tmp"))
    assert WatermarkStore(lake).load() == marks


def test_missing_table_is_named(source_url: str, tmp_path: Path) -> None:
    engine = create_engine(source_url, create_dirs=True)
    write_tables(engine, {"users": small_source_frames()["users"]})
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE events"))
    with pytest.raises(SourceError, match="table 'events' is missing"):
        _run(engine, tmp_path / "lake", "r1")
    engine.dispose()


def test_unknown_scheme_and_missing_sqlite_file() -> None:
    with pytest.raises(ConfigError, match="unsupported URL scheme 'oracle'"):
        create_engine("oracle://scott:tiger@db/orcl")
    with pytest.raises(SourceError, match="does not exist"):
        create_engine("sqlite:////nonexistent/dir/source.db")


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    with lake_lock(tmp_path), pytest.raises(PipelineError, match="holds the lock"), lake_lock(tmp_path):
        pass


def test_watermark_file_is_plain_json(source: sa.Engine, tmp_path: Path) -> None:
    _run(source, tmp_path / "lake", "r1")
    raw = json.loads((tmp_path / "lake/_state/watermarks.json").read_text())
    assert set(raw) == set(TABLES) - {"orders"}


# the sample data is in March 2026; March is a closed month (one partition) from May 6 on
LATER = datetime(2026, 6, 1)


def _rows(lake: Path, table: str) -> pd.DataFrame:
    parts = sorted((lake / "raw" / table).rglob("*.parquet"))
    return pd.concat(pq.read_table(p).to_pandas() for p in parts)


def test_closed_months_are_one_partition(source: sa.Engine, tmp_path: Path) -> None:
    result = extract_load(source, tmp_path / "lake", tables=TABLES, run_id="r1", now=LATER)
    assert result.tables["events"].rows_extracted == 12
    parts = sorted(p.name for p in (tmp_path / "lake/raw/events").glob("dt=*"))
    assert parts == ["dt=2026-03"]
    assert pq.read_table(tmp_path / "lake/raw/events/dt=2026-03/part-0.parquet").num_rows == 12


def test_days_of_a_closed_month_are_compacted_once(source: sa.Engine, tmp_path: Path) -> None:
    lake, fresh = tmp_path / "lake", tmp_path / "fresh"
    _run(source, lake, "r1")
    result = extract_load(source, lake, tables=TABLES, run_id="r2", now=LATER)
    assert result.rows_extracted == 0
    # the same bytes as a lake extracted at that time in one go
    extract_load(source, fresh, tables=TABLES, run_id="f1", now=LATER)
    assert _lake_bytes(lake) == _lake_bytes(fresh)
    backups = sorted(p.parent.name for p in (lake / "_backup/r2/events").rglob("*.parquet"))
    assert backups == ["dt=2026-03-01", "dt=2026-03-02", "dt=2026-03-03", "dt=2026-03-04"]
    before = _lake_bytes(lake)
    assert extract_load(source, lake, tables=TABLES, run_id="r3", now=LATER).rows_extracted == 0
    assert _lake_bytes(lake) == before and not (lake / "_backup/r3").exists()


def test_a_late_row_of_a_closed_month_lands_in_its_month(source: sa.Engine, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _run(source, lake, "r1")
    with source.begin() as conn:
        conn.execute(items.update().where(items.c.item_id == "i2").values(price=55.0, updated_at=LATER))
    result = extract_load(source, lake, tables=TABLES, run_id="r2", now=LATER)
    assert result.tables["items"].rows_updated == 1 and result.rows_extracted == 1
    stored = _rows(lake, "items")
    assert len(stored) == 6 and stored["item_id"].is_unique
    assert dict(zip(stored.item_id, stored.price, strict=True))["i2"] == 55.0
    assert sorted(p.name for p in (lake / "raw/items").glob("dt=*")) == ["dt=2026-03"]


def test_compaction_interrupted_after_the_monthly_write_heals(source: sa.Engine, tmp_path: Path) -> None:
    lake, fresh = tmp_path / "lake", tmp_path / "fresh"
    _run(source, lake, "r1")
    extract_load(source, fresh, tables=TABLES, run_id="f1", now=LATER)
    # as if a run had written the monthly file and crashed before removing the days
    month = lake / "raw/events/dt=2026-03/part-0.parquet"
    month.parent.mkdir()
    month.write_bytes((fresh / "raw/events/dt=2026-03/part-0.parquet").read_bytes())
    assert extract_load(source, lake, tables=TABLES, run_id="r2", now=LATER).rows_extracted == 0
    assert _lake_bytes(lake) == _lake_bytes(fresh)


def test_a_closed_year_is_one_partition_and_months_fold_into_it(source: sa.Engine, tmp_path: Path) -> None:
    lake, fresh = tmp_path / "lake", tmp_path / "fresh"
    years_later = datetime(2028, 3, 1)  # 2026 ended more than MONTHLY_DAYS before
    _run(source, lake, "r1")
    extract_load(source, lake, tables=TABLES, run_id="r2", now=LATER)  # days -> month
    result = extract_load(source, lake, tables=TABLES, run_id="r3", now=years_later)  # month -> year
    assert result.rows_extracted == 0
    assert sorted(p.name for p in (lake / "raw/events").glob("dt=*")) == ["dt=2026"]
    extract_load(source, fresh, tables=TABLES, run_id="f1", now=years_later)
    assert _lake_bytes(lake) == _lake_bytes(fresh)
    assert sorted(p.parent.name for p in (lake / "_backup/r3/events").rglob("*.parquet")) == ["dt=2026-03"]
