"""The offline pipeline's steps as plain functions over paths.

The KFP components in ``components/`` are thin shells over these: they pass parameters and
artifact paths in and log the returned metrics. Everything here is testable without KFP.
Every component imports this package, so the step functions load on first use (PEP 562):
a component pays only for its own step's imports.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from recsys.steps.common import (
    ERROR_PREFIX,
    RESULT_PREFIX,
    emit_result,
    new_run_id,
    parse_time,
    run_record_path,
    step_guard,
    utc_now,
    write_json,
)

_LAZY = {
    "clean_step": "recsys.steps.clean",
    "read_cleaned": "recsys.steps.clean",
    "read_snapshot": "recsys.steps.clean",
    "extract_step": "recsys.steps.extract",
}

__all__ = [
    "ERROR_PREFIX",
    "RESULT_PREFIX",
    "emit_result",
    "clean_step",
    "extract_step",
    "new_run_id",
    "parse_time",
    "read_cleaned",
    "read_snapshot",
    "run_record_path",
    "step_guard",
    "utc_now",
    "write_json",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recsys.steps' has no attribute {name!r}")
