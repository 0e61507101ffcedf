"""Options and helpers shared by the CLI groups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from recsys.settings import Settings, load_settings

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Working directory [env RECSYS_DATA_DIR, default ./data]."),
]
SourceDbOpt = Annotated[
    str | None,
    typer.Option(
        "--source-db",
        "--db",
        help="Source database URL [env RECSYS_SOURCE_DB, default sqlite:///<data-dir>/source.db].",
    ),
]


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    root = ctx.find_root()
    config = (root.obj or {}).get("config")
    return load_settings(config, **overrides)


def echo_json(payload: Any, *, sort_keys: bool = True) -> None:
    """One JSON object on a line; ``sort_keys=False`` where the order means something (steps)."""
    typer.echo(json.dumps(payload, indent=None, sort_keys=sort_keys, default=str))
