"""The evaluation summary: one JSON document that later steps (promotion gate, dashboards) read.

Layout: ``{"schema_version": 1, "generated_at": "<ISO 8601 UTC>", "sections": {...}}``. Sections
are free-form (offline metrics, variant reports, ...) but must be JSON: numpy scalars and arrays,
tuples, sets, datetimes and paths are converted, while NaN and infinity are refused with the key
that holds them, since JSON has no such values and writing null would hide a broken metric.
The file is replaced atomically so a reader never sees half a summary.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import InvalidInput

SCHEMA_VERSION = 1
SUMMARY_PATH = Path("data/evaluation/summary.json")


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, set | frozenset):
        value = sorted(value, key=str)  # sets have no order; sorting keeps the file diffable
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        raise InvalidInput(f"evaluation summary: {where} is {value}, which JSON cannot hold")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise InvalidInput(f"evaluation summary: {where} has unsupported type {type(value).__name__}")


def write_summary(
    path: Path | str, sections: Mapping[str, Any], now: datetime | None = None
) -> dict[str, Any]:
    """Write the summary atomically (temp file + rename) and return the document written."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    document = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": stamp.isoformat(timespec="seconds"),
        "sections": _jsonable(sections, "sections"),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return document


def read_summary(path: Path | str) -> dict[str, Any]:
    """The document written by ``write_summary``; refuses missing, corrupt or newer-schema files."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path}: no evaluation summary (run the evaluation first)") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: not a valid evaluation summary: {exc}") from exc
    if not isinstance(document, dict) or not {"schema_version", "generated_at", "sections"} <= set(document):
        raise InvalidInput(
            f"{path}: not an evaluation summary (missing schema_version/generated_at/sections)"
        )
    if document["schema_version"] != SCHEMA_VERSION:
        raise InvalidInput(
            f"{path}: summary schema version {document['schema_version']!r}, this code reads {SCHEMA_VERSION}"
        )
    return document
