"""What every pipeline step shares: error guard, time parsing, run ids, run records."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from recsys.errors import InvalidInput, PipelineError, RecsysError

ERROR_PREFIX = "recsys-error: "
RESULT_PREFIX = "recsys-result: "
# every step's output directory carries the run id and time forward to the next step
RUN_FILE = "_run.json"
# the train step's model directory, read by evaluate, register and serving (here, so that they
# do not import the train step and with it LightGBM and scikit-learn)
TRAINING_FILE, HISTORIES_FILE = "training.json", "histories.parquet"


@contextmanager
def step_guard() -> Iterator[None]:
    """Turn a RecsysError into one readable line and a non-zero exit (no traceback)."""
    try:
        yield
    except RecsysError as e:
        print(f"{ERROR_PREFIX}{e}", flush=True)
        sys.exit(2)


def parse_time(value: str | None, field: str) -> datetime | None:
    """ISO 8601 to naive UTC; empty means unset."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise InvalidInput(f"{field}: {value!r} is not an ISO 8601 timestamp") from e
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(now: datetime) -> str:
    """Sortable by time, unique across concurrent starts."""
    return f"{now:%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def run_record_path(data_dir: Path, run_id: str, step: str) -> Path:
    """Where each step leaves its summary, so a run can be inspected after the fact."""
    return data_dir / "runs" / run_id / f"{step}.json"


class Run(NamedTuple):
    run_id: str
    run_time: datetime  # when the run started (wall clock): ingest time, partitions
    as_of: datetime  # what the run computes as of: features, training windows, freshness, lag


def run_record(run_id: str, run_time: datetime, as_of: datetime) -> dict[str, str]:
    return {"run_id": run_id, "run_time": run_time.isoformat(), "as_of": as_of.isoformat()}


def read_run(directory: Path) -> Run:
    """The run id, run time and as-of time that an upstream step left in its output directory."""
    path = directory / RUN_FILE
    if not path.exists():
        raise PipelineError(f"{directory} lacks {RUN_FILE}: not written by a recsys step")
    raw = json.loads(path.read_text())
    run_time = datetime.fromisoformat(raw["run_time"])
    return Run(raw["run_id"], run_time, datetime.fromisoformat(raw.get("as_of") or raw["run_time"]))


def emit_result(step: str, result: dict[str, Any]) -> None:
    """One machine-readable line on stdout: how a runner learns what a step did."""
    print(f"{RESULT_PREFIX}{json.dumps({'step': step, 'result': result}, default=str)}", flush=True)
