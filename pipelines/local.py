"""Run the training pipeline on this machine with ``kfp.local`` (no cluster).

Components run as subprocesses in the current environment (``SubprocessRunner(use_venv=False)``).
kfp.local's own chatter and the components' output go to ``<data_dir>/runs/<run_id>/pipeline.log``;
the caller gets one progress line per step and the summary.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kfp import local

from pipelines.training import build_training_pipeline
from recsys.db import check_tables, create_engine, redact
from recsys.errors import PipelineError
from recsys.settings import Settings
from recsys.steps import ERROR_PREFIX, new_run_id, run_record_path, utc_now

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '?([\w-]+)'?")
FINISHED = re.compile(r"Task '?([\w-]+)'? finished with status (\w+)")
STEP_NAMES = {"extract-load": "extract_load", "clean": "clean"}


class _StepWatcher(io.TextIOBase):
    """Stands in for stdout during the run: logs everything, reports step starts and ends."""

    def __init__(self, log: io.TextIOBase, on_step: Callable[[str, str, float], None]) -> None:
        self._log = log
        self._on_step = on_step
        self._started: dict[str, float] = {}
        self._buffer = ""
        self.failures: list[str] = []

    def write(self, text: str) -> int:
        self._log.write(text)
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._scan(ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self._log.flush()

    def _scan(self, line: str) -> None:
        if ERROR_PREFIX in line:
            self.failures.append(line.split(ERROR_PREFIX, 1)[1].strip())
        if m := STARTED.search(line):
            self._started[m.group(1)] = time.perf_counter()
        elif m := FINISHED.search(line):
            task, status = m.group(1), m.group(2)
            seconds = time.perf_counter() - self._started.get(task, time.perf_counter())
            self._on_step(STEP_NAMES.get(task, task), status.lower(), seconds)


def _step_detail(step: str, record: dict[str, Any] | None) -> str:
    if not record:
        return ""
    if step == "extract_load":
        per_table = ", ".join(f"{t} {v['rows_extracted']}" for t, v in record["tables"].items())
        return f"{record['rows_extracted']} rows extracted ({per_table})"
    if step == "clean":
        t = record["totals"]
        return f"{t['kept']} kept, {t['fixed']} fixed, {t['dropped']} dropped"
    return ""


def run_local(
    settings: Settings,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Run the pipeline end to end and return the run summary; raise PipelineError on failure."""
    data_dir = settings.data_dir.resolve()
    source_db = settings.source_db_url
    # fail fast, in-process, with one readable line, before any subprocess starts
    engine = create_engine(source_db)
    try:
        check_tables(engine, settings.cdc.tables)
    finally:
        engine.dispose()

    now = utc_now()
    run_id = new_run_id(now)
    run_dir = data_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    records: dict[str, Any] = {}
    steps: dict[str, dict[str, Any]] = {}

    def on_step(step: str, status: str, seconds: float) -> None:
        path = run_record_path(data_dir, run_id, step)
        record = json.loads(path.read_text()) if path.exists() and status == "success" else None
        records[step] = record
        steps[step] = {"status": status, "seconds": round(seconds, 2)}
        mark = "ok" if status == "success" else "FAILED"
        progress(f"[{len(steps)}] {step:<13} {mark:<6} {seconds:6.1f}s  {_step_detail(step, record)}")

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(data_dir / "kfp"),
        raise_on_error=True,
    )
    pipeline = build_training_pipeline(settings.image)
    log_path = run_dir / "pipeline.log"
    started = time.perf_counter()
    failure: str | None = None
    with log_path.open("w") as log:
        watcher = _StepWatcher(log, on_step)
        real_stdout = sys.stdout
        sys.stdout = watcher
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipeline(
                    source_db=source_db,
                    data_dir=str(data_dir),
                    tables=json.dumps(settings.cdc.tables),
                    run_id=run_id,
                    run_time=now.isoformat(),
                    window_start=window_start.isoformat() if window_start else "",
                    window_end=window_end.isoformat() if window_end else "",
                    cleaning_config=settings.cleaning.model_dump_json(),
                )
        except RuntimeError as e:
            failure = watcher.failures[-1] if watcher.failures else str(e)
        finally:
            sys.stdout = real_stdout
    if failure is not None:
        raise PipelineError(f"pipeline run {run_id} failed: {failure} (log: {log_path})")

    extract, clean = records.get("extract_load") or {}, records.get("clean") or {}
    summary = {
        "run_id": run_id,
        "status": "succeeded",
        "source_db": redact(source_db),
        "data_dir": str(data_dir),
        "duration_seconds": round(time.perf_counter() - started, 2),
        "steps": steps,
        "extracted": {
            "rows": extract.get("rows_extracted", 0),
            "tables": {t: v["rows_extracted"] for t, v in extract.get("tables", {}).items()},
        },
        "cleaned": {
            **clean.get("totals", {}),
            "tables": {t: {k: v[k] for k in ("input", "kept")} for t, v in clean.get("tables", {}).items()},
            "output": clean.get("cleaned_dir"),
        },
        "artifacts": {
            "run_metrics": extract.get("metrics_json"),
            "cleaning_report": clean.get("report_json"),
            "log": str(log_path),
        },
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _prune_local_outputs(data_dir / "kfp", settings.keep_local_runs)
    return summary


def _prune_local_outputs(pipeline_root: Path, keep: int) -> None:
    """kfp.local keeps every run's artifacts (a full cleaned copy each): keep the newest few."""
    runs = sorted(pipeline_root.glob("*-????-??-??-??-??-??-*"), key=lambda p: p.name[-26:])
    for old in runs[: max(0, len(runs) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
