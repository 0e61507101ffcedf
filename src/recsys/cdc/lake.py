"""The raw lake: date-partitioned Parquet per source table, written atomically.

Layout: ``<lake>/raw/<table>/dt=<key>/part-0.parquet``, where the key is the day, month or year
of the table's partition column (see ``partitions``). A partition is rewritten only when its
content changes; the file it replaces is kept under ``<lake>/_backup/<run_id>/``. Writes go to a
temporary file in the same directory and are renamed into place, so a reader never sees a
half-written partition.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from recsys.cdc.partitions import coarsest_key
from recsys.contracts import CONTRACTS, TableContract

PART_FILE = "part-0.parquet"


def latest_per_key(table: pa.Table, pk: str) -> pa.Table:
    """One row per primary key: the last occurrence (rows arrive ordered by updated_at)."""
    if table.num_rows == pc.count_distinct(table[pk]).as_py():
        return table
    idx = pa.array(range(table.num_rows))
    last = table.append_column("__i", idx).group_by(pk).aggregate([("__i", "max")])
    return table.take(pc.sort_indices(last["__i_max"]))


def arrow_schema(contract: TableContract) -> pa.Schema:
    """The Parquet schema of a contract table, fixed so identical rows give identical bytes."""
    fields = []
    for col in contract.table.columns:
        if isinstance(col.type, sa.DateTime):
            typ = pa.timestamp("us")
        elif isinstance(col.type, sa.Float):
            typ = pa.float64()
        elif isinstance(col.type, sa.Integer):
            typ = pa.int64()
        else:
            typ = pa.string()
        fields.append(pa.field(col.name, typ, nullable=col.nullable))
    return pa.schema(fields)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_parquet_atomic(table: pa.Table, path: Path, tag: str) -> None:
    """Write ``table`` to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{tag}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class Lake:
    root: Path

    def table_dir(self, table: str) -> Path:
        return self.root / "raw" / table

    def partition_path(self, table: str, key: str) -> Path:
        return self.table_dir(table) / f"dt={key}" / PART_FILE

    def partitions(self, table: str) -> list[Path]:
        base = self.table_dir(table)
        return sorted(base.glob(f"dt=*/{PART_FILE}")) if base.exists() else []

    def read_partition(self, table: str, key: str) -> pa.Table | None:
        path = self.partition_path(table, key)
        if not path.exists():
            return None
        return pq.read_table(path, schema=arrow_schema(CONTRACTS[table]))

    def _backup(self, table: str, key: str, run_id: str) -> None:
        path = self.partition_path(table, key)
        if path.exists():
            backup = self.root / "_backup" / run_id / table / f"dt={key}" / PART_FILE
            backup.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, backup)  # the old inode lives on in the backup after the swap
            except OSError:
                shutil.copy2(path, backup)

    def replace_partition(self, table: str, key: str, data: pa.Table, run_id: str) -> None:
        """Back up the current file (if any) under the run id, then swap the new one in."""
        self._backup(table, key, run_id)
        write_parquet_atomic(data, self.partition_path(table, key), run_id)

    def compact(self, table: str, now: datetime, run_id: str) -> int:
        """Fold the partitions of periods that have closed into their month or year; partitions written.

        The coarser file (its old rows + the finer partitions', by primary key) is written before
        the finer ones are removed; a crash in between leaves rows in both, which the next run's
        compaction folds again (the same rows, deduplicated by key). Removed partitions are
        backed up under the run id.
        """
        folds: dict[str, list[str]] = {}
        for path in self.partitions(table):
            key = path.parent.name.removeprefix("dt=")
            if (target := coarsest_key(key, now)) != key:
                folds.setdefault(target, []).append(key)
        pk = CONTRACTS[table].primary_key
        for target, keys in sorted(folds.items()):
            parts = [self.read_partition(table, k) for k in [target, *keys]]
            merged = latest_per_key(pa.concat_tables([p for p in parts if p is not None]), pk)
            self.replace_partition(table, target, merged.sort_by(pk), run_id)
            for key in keys:
                self._backup(table, key, run_id)
                self.partition_path(table, key).unlink()
                self.partition_path(table, key).parent.rmdir()
        return len(folds)

    def prune_backups(self, keep_runs: int) -> None:
        base = self.root / "_backup"
        if not base.exists():
            return
        runs = sorted(p for p in base.iterdir() if p.is_dir())
        for old in runs[: max(0, len(runs) - keep_runs)]:
            shutil.rmtree(old, ignore_errors=True)

    def manifest(self, tables: list[str]) -> dict[str, list[dict[str, object]]]:
        """Every partition of ``tables`` with its row count and checksum."""
        out: dict[str, list[dict[str, object]]] = {}
        for table in tables:
            entries = []
            for path in self.partitions(table):
                entries.append(
                    {
                        "path": path.relative_to(self.root).as_posix(),
                        "rows": pq.ParquetFile(path).metadata.num_rows,
                        "sha256": file_sha256(path),
                    }
                )
            out[table] = entries
        return out
