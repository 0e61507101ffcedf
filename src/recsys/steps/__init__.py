"""The offline pipeline's steps as plain functions over paths.

The KFP components in ``components/`` are thin shells over these: they pass parameters and
artifact paths in and log the returned metrics. Everything here is testable without KFP.
"""

from recsys.steps.clean import clean_step, read_cleaned, read_snapshot
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
from recsys.steps.extract import extract_step

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
