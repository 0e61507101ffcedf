"""CSV import: round trip into SQLite, the file:line: field error format, all-or-nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from recsys.contracts import CONTRACTS
from recsys.data.csv_import import CsvImportError, import_csv, read_csv_files
from recsys.db import create_engine
from recsys.errors import InvalidInput

NOW = datetime(2026, 1, 15, 12, 0, 0)

USERS = """user_id,industry,region,created_at
u1,retail,eu,2025-01-01T10:00:00+02:00
u2,,,1735689600
"""

# column order differs from the documented one on purpose; the description spans two lines
ITEMS = """item_id,title,category,description,industry,tags,price,status,created_at,updated_at
i1,Chair,furniture,"A chair,
comfy",retail, Wood | oak |Wood ,19.9,,2025-01-01,2025-02-01T00:00:00Z
i2,Desk,furniture,,,,,inactive,2025-01-01 00:00:00,
"""

EVENTS = """event_id,user_id,item_id,event_type,ts,request_id,position,value,scene
e1,u1,i1,view,2025-03-01T12:00:00-05:00,r1,3,,home
e2,u1,i1,purchase,1740830400,,,19.9,
e3,ghost,i404,click,2025-03-01T12:00:00,,,,
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _engine(tmp_path: Path) -> Engine:
    return create_engine(f"sqlite:///{tmp_path}/s.db", create_dirs=True)


def _rows(engine: Engine, table: str) -> list[dict]:
    # through the contract table, so SQLite's text timestamps come back as datetimes
    tbl = CONTRACTS[table].table
    pk = CONTRACTS[table].primary_key
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(tbl).order_by(tbl.c[pk]))]


def _error(tmp_path: Path, **texts: str) -> CsvImportError:
    paths = {table: _write(tmp_path, f"{table}.csv", text) for table, text in texts.items()}
    with pytest.raises(CsvImportError) as info:
        read_csv_files(**paths, now=NOW)
    return info.value


def test_round_trip_into_sqlite(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    written = import_csv(
        engine,
        _write(tmp_path, "users.csv", USERS),
        _write(tmp_path, "items.csv", ITEMS),
        _write(tmp_path, "events.csv", EVENTS),
        now=NOW,
    )
    assert written == {"users": 2, "items": 2, "events": 3}

    users = _rows(engine, "users")
    assert [u["user_id"] for u in users] == ["u1", "u2"]
    assert users[0]["created_at"] == datetime(2025, 1, 1, 8, 0)  # +02:00 -> UTC
    assert users[1]["created_at"] == datetime(2025, 1, 1)  # unix seconds
    assert users[1]["industry"] is None and users[1]["region"] is None
    assert all(u["updated_at"] == NOW for u in users)

    chair, desk = _rows(engine, "items")
    assert chair["description"] == "A chair,\ncomfy"
    assert chair["tags"] == "Wood|oak"
    assert chair["price"] == pytest.approx(19.9)
    assert chair["status"] == "active"  # empty status defaults to active
    assert chair["updated_at"] == datetime(2025, 2, 1)
    assert desk["status"] == "inactive" and desk["price"] is None and desk["tags"] is None
    assert desk["updated_at"] == NOW

    e1, e2, e3 = _rows(engine, "events")
    assert e1["ts"] == datetime(2025, 3, 1, 17, 0)  # -05:00 -> UTC
    assert (e1["request_id"], e1["position"], e1["value"], e1["scene"]) == ("r1", 3, None, "home")
    assert e1["ts_offset_minutes"] is None  # already converted, the cleaner must not redo it
    assert e2["ts"] == datetime(2025, 3, 1, 12, 0) and e2["value"] == pytest.approx(19.9)
    # orphans are accepted here; the cleaner counts them
    assert (e3["user_id"], e3["item_id"], e3["ts"]) == ("ghost", "i404", datetime(2025, 3, 1, 12))
    assert {e["source"] for e in (e1, e2, e3)} == {"csv"}
    assert {e["updated_at"] for e in (e1, e2, e3)} == {NOW}


def test_reimport_upserts_by_primary_key(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    import_csv(engine, users=_write(tmp_path, "users.csv", USERS), now=NOW)
    changed = USERS.replace("u2,,,", "u2,bank,us,")
    later = NOW + timedelta(days=1)
    assert import_csv(engine, users=_write(tmp_path, "users.csv", changed), now=later) == {"users": 2}
    users = _rows(engine, "users")
    assert len(users) == 2
    assert (users[1]["industry"], users[1]["updated_at"]) == ("bank", later)


def test_aware_now_is_stored_as_naive_utc(tmp_path: Path) -> None:
    now = datetime(2026, 1, 15, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    frames = read_csv_files(users=_write(tmp_path, "users.csv", USERS), now=now)
    assert set(frames["users"]["updated_at"]) == {datetime(2026, 1, 15, 12, 0)}
    default = read_csv_files(users=_write(tmp_path, "users.csv", USERS))
    stamp = default["users"]["updated_at"].iloc[0]
    assert abs(stamp - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("table", "text", "message"),
    [
        (
            "items",
            ITEMS.replace("19.9,", "-3.5,"),
            "items.csv:2: price: -3.5 is negative",
        ),
        (
            "items",
            ITEMS.replace("19.9,", "cheap,"),
            "items.csv:2: price: 'cheap' is not a number",
        ),
        (
            "items",
            ITEMS.replace(",inactive,", ",sold,"),
            "items.csv:4: status: 'sold' is not one of active, inactive",
        ),
        (
            "events",
            EVENTS.replace(",purchase,", ",clik,"),
            "events.csv:3: event_type: 'clik' is not one of impression, view, click, add_to_cart, purchase",
        ),
        ("users", USERS.replace("u2,", ","), "users.csv:3: user_id: empty"),
        (
            "events",
            EVENTS.replace("1740830400", "2026-13-01"),
            "events.csv:3: ts: '2026-13-01' is not a timestamp",
        ),
        (
            "events",
            EVENTS.replace("1740830400", "1740830400000"),
            "events.csv:3: ts: 1740830400000 is out of range for unix seconds",
        ),
        (
            "events",
            EVENTS.replace(",r1,3,", ",r1,-1,"),
            "events.csv:2: position: -1 is negative",
        ),
        (
            "events",
            EVENTS.replace(",r1,3,", ",r1,2.5,"),
            "events.csv:2: position: '2.5' is not an integer",
        ),
        (
            "events",
            EVENTS.replace("event_id,user_id,item_id,", "event_id,user_id,"),
            "events.csv:1: header: missing column(s) item_id",
        ),
        (
            "users",
            USERS.replace("created_at\n", "created_at,email\n"),
            "users.csv:1: header: unknown column(s) email",
        ),
        (
            "users",
            USERS.replace("region,", "region,region,"),
            "users.csv:1: header: duplicate column(s) region",
        ),
        (
            "users",
            USERS + "u1,,,2025-01-02\n",
            "users.csv:4: user_id: duplicate 'u1' (first on line 2)",
        ),
        ("events", EVENTS + "e4,u1\n", "events.csv:5: row: has 2 field(s), the header has 9"),
        (
            "users",
            "user_id,industry,region,created_at,updated_at\n"
            "u1,,,2025-01-01,2025-01-02\n"
            "u2,,,2025-01-01,2024-12-31T23:59:59\n",
            "users.csv:3: updated_at: is before created_at",
        ),
        ("users", "", "users.csv:1: header: file is empty (a header row is required)"),
        (
            "users",
            USERS.replace("u2,", "u" * 65 + ","),
            "users.csv:3: user_id: 65 characters, at most 64 allowed",
        ),
    ],
)
def test_error_names_file_line_and_field(tmp_path: Path, table: str, text: str, message: str) -> None:
    err = _error(tmp_path, **{table: text})
    assert str(err) == message
    assert err.errors == [message]
    assert isinstance(err, InvalidInput) and err.status == 400


def test_line_numbers_count_multiline_cells(tmp_path: Path) -> None:
    # the quoted description of i1 spans lines 2-3, so i2 is on line 4
    err = _error(tmp_path, items=ITEMS.replace(",furniture,,", ",,,"))
    assert str(err) == "items.csv:4: category: empty"


def test_all_errors_are_collected_first_one_reported(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        users=USERS.replace("u2,", ","),
        events=EVENTS.replace(",purchase,", ",clik,").replace("2025-03-01T12:00:00,", "x,"),
    )
    assert str(err) == "users.csv:3: user_id: empty (and 2 more)"
    assert err.errors == [
        "users.csv:3: user_id: empty",
        "events.csv:3: event_type: 'clik' is not one of impression, view, click, add_to_cart, purchase",
        "events.csv:4: ts: 'x' is not a timestamp",
    ]


def test_nothing_is_written_when_any_file_is_bad(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    with pytest.raises(InvalidInput, match=r"^events\.csv:3: event_type:"):
        import_csv(
            engine,
            _write(tmp_path, "users.csv", USERS),
            _write(tmp_path, "items.csv", ITEMS),
            _write(tmp_path, "events.csv", EVENTS.replace(",purchase,", ",clik,")),
            now=NOW,
        )
    present = set(sa.inspect(engine).get_table_names())
    for table in ("users", "items", "events") if present else ():
        assert _rows(engine, table) == []


def test_missing_file_and_no_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"^users\.csv: file not found: .*users\.csv$"):
        read_csv_files(users=tmp_path / "users.csv")
    with pytest.raises(InvalidInput, match="no file given"):
        read_csv_files()


def test_header_only_file_imports_nothing(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    header = USERS.splitlines()[0] + "\n"
    assert import_csv(engine, users=_write(tmp_path, "users.csv", header), now=NOW) == {"users": 0}


def test_naive_timestamps_after_offset_ones_stay_utc(tmp_path: Path) -> None:
    # pandas alone would apply the first cell's -05:00 to the naive cell that follows it
    text = (
        "event_id,user_id,item_id,event_type,ts\n"
        "e1,u,i,view,2025-03-01T12:00:00-05:00\n"
        "e2,u,i,view,2025-03-01T12:00:00\n"
        "e3,u,i,view,2025-03-01\n"
        "e4,u,i,view,2025-03-01 12:00:00.250+05:30\n"
    )
    frames = read_csv_files(events=_write(tmp_path, "events.csv", text), now=NOW)
    assert list(frames["events"]["ts"]) == [
        datetime(2025, 3, 1, 17, 0),
        datetime(2025, 3, 1, 12, 0),
        datetime(2025, 3, 1),
        datetime(2025, 3, 1, 6, 30, 0, 250000),
    ]
