"""The exposure log: one JSONL record per answered request, written off the request path.

``submit`` puts the record on a bounded queue and returns at once; when the queue is full the
record is dropped and counted (``recommendation_exposures_dropped_total``) rather than making a
request wait. One background thread appends to ``<dir>/exposures-<UTC date>.jsonl`` (a new
file each day) and flushes whenever the queue runs empty; ``close`` drains the queue first.
The fields are what ``recsys.evaluation.experiments.read_exposures`` reads.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from inference import transformer_metrics as metrics

log = logging.getLogger("kserve.recsys.exposures")
_STOP = object()


def exposure_path(directory: Path, when: datetime, suffix: str = "") -> Path:
    return directory / f"exposures-{when.strftime('%Y-%m-%d')}{suffix}.jsonl"


class ExposureLog:
    def __init__(self, directory: Path, max_queue: int = 10_000, suffix: str = "") -> None:
        """``suffix``: a writer of its own per process (``-<pid>``), so that lines never interleave."""
        self.directory = Path(directory)
        self.suffix = suffix
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_queue = max_queue
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._closed = True
        self.reopen()

    def reopen(self) -> None:
        """Accept records again after ``close`` (a model loaded again after an unload)."""
        if not self._closed:
            return
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.max_queue)
        self._path = None
        self._thread = threading.Thread(target=self._run, name="recsys-exposures", daemon=True)
        self._thread.start()
        self._closed = False

    def submit(self, record: dict[str, Any]) -> bool:
        """Queue one record; False (and counted) when the queue is full or the log closed."""
        if self._closed:
            return False
        try:
            self._queue.put_nowait(record)
            return True
        except queue.Full:
            metrics.EXPOSURES_DROPPED.inc()
            return False

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, flush and close the file; later submits are refused."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)  # blocks only while the queue is full, which the writer drains
        self._thread.join(timeout)

    def _write(self, record: dict[str, Any]) -> None:
        ts = record.get("ts")
        when = datetime.fromisoformat(ts) if isinstance(ts, str) else datetime.now(UTC)
        path = exposure_path(self.directory, when, self.suffix)
        if path != self._path:  # first record, or the date rolled over
            if self._file is not None:
                self._file.close()
            self._file = path.open("ab")
            self._path = path
        assert self._file is not None
        self._file.write(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            try:
                self._write(item)
                if self._queue.empty() and self._file is not None:
                    self._file.flush()
            except (OSError, TypeError, ValueError) as e:
                log.error("exposure log: cannot write a record: %s", e)
        if self._file is not None:
            self._file.close()
            self._file = None
