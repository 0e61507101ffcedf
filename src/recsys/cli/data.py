"""``recsys data``: fill the source database (synthetic, MovieLens, CSV)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from recsys.cli.common import DataDirOpt, SourceDbOpt, echo_json, settings_from
from recsys.db import create_engine
from recsys.redaction import redact
from recsys.steps.common import parse_time, utc_now

app = typer.Typer(help="Generate or import source data.", no_args_is_help=True)
import_app = typer.Typer(help="Import external data into the source database.", no_args_is_help=True)
app.add_typer(import_app, name="import")


def _default_start(days: int) -> datetime:
    """The simulated period ends at today's midnight (UTC), so the data is fresh."""
    today = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def _report(kind: str, url: str, written: dict[str, int], started: float, as_json: bool) -> None:
    seconds = round(time.perf_counter() - started, 2)
    if as_json:
        echo_json({"source": kind, "source_db": redact(url), "rows": written, "seconds": seconds})
        return
    rows = ", ".join(f"{t} {n}" for t, n in written.items())
    typer.echo(f"{kind}: wrote {rows} into {redact(url)} in {seconds}s")


@app.command("generate")
def generate(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 2000,
    items: Annotated[int, typer.Option(min=1, help="Number of items.")] = 1000,
    days: Annotated[int, typer.Option(min=1, help="Days of behaviour to simulate.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed; same seed and start, same data.")] = 42,
    start: Annotated[
        str | None,
        typer.Option(help="First simulated day (ISO date) [default: --days before today, UTC]."),
    ] = None,
    dirty_rate: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Fraction of deliberately dirty rows.")
    ] = 0.005,
    matomo: Annotated[bool, typer.Option(help="Also write the Matomo export.")] = True,
    matomo_out: Annotated[
        Path | None,
        typer.Option(help="Matomo Live.getLastVisitsDetails JSON [default <data-dir>/matomo/visits.json]."),
    ] = None,
    db: SourceDbOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write a deterministic synthetic marketplace into the source database."""
    from recsys.data.loader import write_tables
    from recsys.data.synthetic import SyntheticConfig, generate_marketplace, write_matomo_export

    settings = settings_from(ctx, data_dir=data_dir, source_db=db)
    started = time.perf_counter()
    first_day = parse_time(start, "--start") or _default_start(days)
    config = SyntheticConfig(
        users=users, items=items, days=days, seed=seed, dirty_rate=dirty_rate, start=first_day
    )
    market = generate_marketplace(config)
    engine = create_engine(settings.source_db_url, create_dirs=True)
    try:
        written = write_tables(engine, market.frames())
    finally:
        engine.dispose()
    if matomo:
        matomo_path = matomo_out or settings.data_dir / "matomo" / "visits.json"
        visits = write_matomo_export(market, matomo_path)
        if not as_json:
            typer.echo(f"matomo: {visits} visits in {matomo_path}")
    _report("synthetic", settings.source_db_url, written, started, as_json)


@import_app.command("movielens")
def import_movielens(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The ml-latest-small directory.")],
    db: SourceDbOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Load MovieLens (ratings -> events, genres -> category, tags -> tags)."""
    from recsys.data.movielens import import_movielens as run_import

    settings = settings_from(ctx, data_dir=data_dir, source_db=db)
    started = time.perf_counter()
    engine = create_engine(settings.source_db_url, create_dirs=True)
    try:
        written = run_import(path, engine)
    finally:
        engine.dispose()
    _report("movielens", settings.source_db_url, written, started, as_json)


@import_app.command("csv")
def import_csv(
    ctx: typer.Context,
    users: Annotated[Path | None, typer.Option(help="users.csv")] = None,
    items: Annotated[Path | None, typer.Option(help="items.csv")] = None,
    events: Annotated[Path | None, typer.Option(help="events.csv")] = None,
    db: SourceDbOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Import your own data (schema in docs/DATA_CONTRACTS.md); all files validated first."""
    from recsys.data.csv_import import import_csv as run_import
    from recsys.errors import InvalidInput

    if users is None and items is None and events is None:
        raise InvalidInput("csv import: give at least one of --users, --items, --events")
    settings = settings_from(ctx, data_dir=data_dir, source_db=db)
    started = time.perf_counter()
    engine = create_engine(settings.source_db_url, create_dirs=True)
    try:
        written = run_import(engine, users=users, items=items, events=events)
    finally:
        engine.dispose()
    _report("csv", settings.source_db_url, written, started, as_json)
