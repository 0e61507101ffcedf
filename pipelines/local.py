"""Run the pipelines on this machine with ``kfp.local`` (no cluster).

Components run as subprocesses in the current environment (``SubprocessRunner(use_venv=False)``).
kfp.local's own chatter and the components' output go to ``<data_dir>/runs/<run_id>/pipeline.log``;
the caller gets one progress line per step (from the ``recsys-result:`` line each component
prints) and the summary.
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
from pathlib import Path
from typing import Any

from kfp import local

from pipelines.submit import pipeline_arguments
from pipelines.summary import step_detail, training_summary
from pipelines.training import build_sync_pipeline, build_training_pipeline
from recsys.db import check_tables, create_engine
from recsys.errors import PipelineError
from recsys.features.registry import load_registry
from recsys.quality import load_quality_config
from recsys.recall.config import load_recall_config
from recsys.settings import Settings
from recsys.steps import ERROR_PREFIX, RESULT_PREFIX, new_run_id, utc_now
from recsys.steps.sync import latest_bundle

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '?([\w-]+)'?")
FINISHED = re.compile(r"Task '?([\w-]+)'? finished with status (\w+)")
Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _StepWatcher(io.TextIOBase):
    """Stands in for stdout during the run: logs everything, reports steps as they end."""

    def __init__(self, log: io.TextIOBase, progress: Progress) -> None:
        self._log = log
        self._progress = progress
        self._started: dict[str, float] = {}
        self._buffer = ""
        self.failures: list[str] = []
        self.results: dict[str, dict[str, Any]] = {}
        self.steps: dict[str, dict[str, Any]] = {}

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
        elif RESULT_PREFIX in line:
            payload = json.loads(line.split(RESULT_PREFIX, 1)[1])
            self.results[payload["step"]] = payload["result"]
        elif m := STARTED.search(line):
            self._started[m.group(1)] = time.perf_counter()
        elif m := FINISHED.search(line):
            task, status = m.group(1), m.group(2).lower()
            step = task.replace("-", "_")
            seconds = time.perf_counter() - self._started.get(task, time.perf_counter())
            self.steps[step] = {"status": status, "seconds": round(seconds, 2)}
            mark = "ok" if status == "success" else "FAILED"
            detail = step_detail(step, self.results.get(step)) if status == "success" else ""
            self._progress(f"[{len(self.steps)}] {step:<13} {mark:<6} {seconds:6.1f}s  {detail}".rstrip())


def _execute(
    pipeline: Any, arguments: dict[str, Any], data_dir: Path, run_dir: Path, progress: Progress
) -> _StepWatcher:
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(data_dir / "kfp"),
        raise_on_error=True,
    )
    log_path = run_dir / "pipeline.log"
    with log_path.open("w") as log:
        watcher = _StepWatcher(log, progress)
        real_stdout, sys.stdout = sys.stdout, watcher
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipeline(**arguments)
        except RuntimeError as e:
            reason = watcher.failures[-1] if watcher.failures else str(e)
            raise PipelineError(f"pipeline run {run_dir.name} failed: {reason} (log: {log_path})") from e
        finally:
            sys.stdout = real_stdout
    return watcher


def _new_run(data_dir: Path) -> tuple[str, datetime, Path]:
    now = utc_now()
    run_id = new_run_id(now)
    run_dir = data_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_id, now, run_dir


def run_local(
    settings: Settings,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    as_of: str = "",
    progress: Progress = _stderr,
) -> dict[str, Any]:
    """Run the training pipeline; raise PipelineError on failure.

    A run stopped by the quality gate returns its summary with status ``stopped_at_quality_gate``.
    """
    data_dir = settings.data_dir.resolve()
    # fail fast, in-process, with one readable line, before any subprocess starts
    engine = create_engine(settings.source_db_url)
    try:
        check_tables(engine, settings.cdc.tables)
    finally:
        engine.dispose()
    load_registry(settings.feature_registry)  # fail fast on a bad registry
    load_quality_config(settings.quality_config)  # ... and on bad quality checks
    load_recall_config(settings.recall_config)  # ... and on bad recall channels

    run_id, now, run_dir = _new_run(data_dir)
    started = time.perf_counter()
    watcher = _execute(
        build_training_pipeline(settings.image),
        pipeline_arguments(
            settings,
            data_dir=str(data_dir),
            source_db=settings.source_db_url,
            store_url=settings.online_store_url,
            fallback_url=settings.online_store_fallback_url or "",
            run_id=run_id,
            run_time=now,
            window_start=window_start,
            window_end=window_end,
            as_of=as_of,
        ),
        data_dir,
        run_dir,
        progress,
    )
    summary = training_summary(
        run_id, settings, watcher.results, watcher.steps, run_dir, round(time.perf_counter() - started, 2)
    )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _prune_local_outputs(data_dir / "kfp", settings.keep_local_runs)
    gate = watcher.results.get("quality_gate") or {}
    if gate and not gate["passed"]:
        progress(f"[{len(watcher.steps) + 1}] train ... sync_store  skipped (quality gate)")
    return summary


def run_sync_local(settings: Settings, *, progress: Progress = _stderr) -> dict[str, Any]:
    """Re-publish the latest bundle to the online store through the ``recsys-sync`` pipeline."""
    data_dir = settings.data_dir.resolve()
    bundle = latest_bundle(data_dir)
    run_id, _, run_dir = _new_run(data_dir)
    started = time.perf_counter()
    watcher = _execute(
        build_sync_pipeline(settings.image),
        {
            "bundle": str(bundle),
            "data_dir": str(data_dir),
            "store_url": settings.online_store_url,
            "fallback_url": settings.online_store_fallback_url or "",
        },
        data_dir,
        run_dir,
        progress,
    )
    summary = {
        "run_id": run_id,
        "status": "succeeded",
        "mode": "sync-only",
        "duration_seconds": round(time.perf_counter() - started, 2),
        "steps": watcher.steps,
        "synced": watcher.results.get("sync_store"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _prune_local_outputs(pipeline_root: Path, keep: int) -> None:
    """kfp.local keeps every run's artifacts (a full cleaned copy each): keep the newest few."""
    runs = sorted(pipeline_root.glob("*-????-??-??-??-??-??-*"), key=lambda p: p.name[-26:])
    for old in runs[: max(0, len(runs) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
