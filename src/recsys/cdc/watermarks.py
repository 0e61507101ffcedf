"""Durable per-table CDC watermarks (JSON, replaced atomically) and the lake lock."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from recsys.errors import PipelineError


class WatermarkStore:
    """``{table: last extracted updated_at}`` in ``<lake>/_state/watermarks.json``."""

    def __init__(self, lake_root: Path) -> None:
        self.path = lake_root / "_state" / "watermarks.json"

    def load(self) -> dict[str, datetime]:
        if not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text())
            return {table: datetime.fromisoformat(ts) for table, ts in raw.items()}
        except (ValueError, AttributeError) as e:
            raise PipelineError(f"cdc: watermark file {self.path} is corrupt: {e}") from e

    def save(self, marks: dict[str, datetime]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        payload = {t: marks[t].isoformat(timespec="microseconds") for t in sorted(marks)}
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, self.path)


@contextmanager
def lake_lock(lake_root: Path) -> Iterator[None]:
    """One writer per lake: a second concurrent extract fails fast instead of interleaving."""
    lock_path = lake_root / "_state" / "lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise PipelineError(f"cdc: another extract holds the lock on {lake_root}") from e
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
