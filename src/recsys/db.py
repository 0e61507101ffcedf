"""Source database access: URL validation, engines, schema creation and upserts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from recsys.contracts import CONTRACTS, metadata
from recsys.errors import ConfigError, SourceError
from recsys.redaction import redact

# scheme -> driver-qualified scheme SQLAlchemy should use
SUPPORTED_SCHEMES: dict[str, str] = {
    "sqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mysql+pymysql": "mysql+pymysql",
}


def normalize_url(url: str) -> str:
    """Validate the scheme and pick the driver; raise ConfigError naming the URL otherwise."""
    if not url or "://" not in url:
        raise ConfigError(f"source_db: {url!r} is not a database URL (e.g. sqlite:///data/source.db)")
    scheme, rest = url.split("://", 1)
    driver = SUPPORTED_SCHEMES.get(scheme.lower())
    if driver is None:
        supported = ", ".join(sorted({s.split("+")[0] for s in SUPPORTED_SCHEMES}))
        raise ConfigError(
            f"source_db: unsupported URL scheme {scheme!r} in {redact(url)} (supported: {supported})"
        )
    return f"{driver}://{rest}"


def create_engine(url: str, *, create_dirs: bool = False) -> Engine:
    """An engine for ``url``; for SQLite, optionally create the parent directory."""
    normalized = normalize_url(url)
    parsed = make_url(normalized)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            if create_dirs:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.exists():
                raise SourceError(f"source_db: SQLite file {path} does not exist")
        connect_args["timeout"] = 30
    elif parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = 5
    try:
        return sa.create_engine(normalized, connect_args=connect_args, future=True)
    except (ArgumentError, ImportError) as e:
        raise ConfigError(f"source_db: cannot use {redact(url)}: {e}") from e


def create_schema(engine: Engine) -> None:
    """Create the contract tables that do not exist yet."""
    try:
        metadata.create_all(engine)
    except OperationalError as e:
        raise SourceError(f"source_db: cannot reach {redact(str(engine.url))}: {_first_line(e)}") from e


def check_tables(engine: Engine, tables: Iterable[str]) -> None:
    """Fail with the table and URL named when a contract table is missing or lacks a column."""
    try:
        inspector = sa.inspect(engine)
        present = set(inspector.get_table_names())
    except OperationalError as e:
        raise SourceError(f"source_db: cannot reach {redact(str(engine.url))}: {_first_line(e)}") from e
    for name in tables:
        if name not in present:
            raise SourceError(
                f"source_db: table {name!r} is missing in {redact(str(engine.url))} "
                "(run `recsys data generate` or an import first)"
            )
        have = {c["name"] for c in inspector.get_columns(name)}
        missing = [c for c in CONTRACTS[name].columns if c not in have]
        if missing:
            raise SourceError(f"source_db: table {name!r} lacks column(s) {', '.join(missing)}")


def upsert_rows(conn: Connection, table: str, rows: list[Mapping[str, Any]], batch: int = 5000) -> int:
    """Insert or replace ``rows`` by primary key, in batches, inside the caller's transaction."""
    if not rows:
        return 0
    tbl = CONTRACTS[table].table
    pk = CONTRACTS[table].primary_key
    dialect = conn.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        insert = None
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        if insert is None:  # portable fallback (e.g. MySQL): delete then insert
            conn.execute(tbl.delete().where(tbl.c[pk].in_([r[pk] for r in chunk])))
            conn.execute(tbl.insert(), chunk)
            continue
        stmt = insert(tbl)
        update_cols = {c.name: stmt.excluded[c.name] for c in tbl.columns if c.name != pk}
        conn.execute(stmt.on_conflict_do_update(index_elements=[pk], set_=update_cols), chunk)
    return len(rows)


def write_error(e: SQLAlchemyError) -> SourceError:
    return SourceError(f"source_db: writing failed: {_first_line(e)}")


def _first_line(e: Exception) -> str:
    return str(getattr(e, "orig", e) or e).strip().splitlines()[0]
