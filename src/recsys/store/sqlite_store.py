"""SQLite backend (stdlib sqlite3, WAL): the embedded default and the fallback when Redis is down.

WAL lets several reader processes run beside one writer; every read runs in one read
transaction, so it sees one snapshot of ``active`` and the rows of the version it names. A
version's rows are written while it is ``pending`` and become visible when one transaction
flips it to ``ready``; the active pointer is flipped in a transaction of its own.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import Field

from recsys.errors import ConfigError, InvalidInput, StoreError, StoreUnavailable, VersionMissing
from recsys.store.base import (
    FeatureBlock,
    Lookup,
    OnlineStore,
    PreparedSnapshot,
    Progress,
    RecallList,
    StoreConfig,
    StoreSnapshot,
    check_entity,
    check_keep,
    check_name,
    prepare,
    prune_after_publish,
)
from recsys.store.codec import decode_recall, decode_rows, decode_vector, encode_recall, encode_rows

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    version TEXT PRIMARY KEY, created_at REAL NOT NULL, state TEXT NOT NULL,
    user_dim INTEGER, item_dim INTEGER NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (
    version TEXT NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (version, entity, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recall (
    version TEXT NOT NULL, channel TEXT NOT NULL, key TEXT NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (version, channel, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS active (
    one INTEGER PRIMARY KEY CHECK (one = 1), version TEXT NOT NULL);
"""
# below SQLITE_MAX_VARIABLE_NUMBER of old builds (999), with room for the other parameters
IN_CHUNK = 900
_ACTIVE_SQL = (
    "SELECT v.version, v.user_dim, v.item_dim FROM active a "
    "JOIN versions v ON v.version = a.version AND v.state = 'ready'"
)
_VERSION_SQL = "SELECT version, user_dim, item_dim FROM versions WHERE version = ? AND state = 'ready'"


class SQLiteStoreConfig(StoreConfig):
    batch_size: int = Field(5000, gt=0, description="rows per write transaction")
    busy_timeout_s: float = Field(10.0, gt=0, description="wait this long for the writer lock")
    create_dirs: bool = Field(True, description="create the file's directory when missing")


def path_from_url(url: str) -> Path:
    """``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (SQLAlchemy's convention)."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    if not rest.startswith("/") or rest[1:] in ("", ":memory:") or "?" in rest:
        raise ConfigError(
            f"store: {url!r} is not a usable SQLite store URL (sqlite:///path/to/store.db; "
            "no :memory: since readers open their own connections)"
        )
    return Path(rest[1:])


class SQLiteStore(OnlineStore):
    name = "sqlite"

    def __init__(self, path: str | Path, config: SQLiteStoreConfig | None = None) -> None:
        self.config = config or SQLiteStoreConfig()
        self.path = Path(path)
        if self.config.create_dirs:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        conn = self._conn()
        with self._guard("open"):
            conn.execute("PRAGMA journal_mode=WAL")  # persistent in the file
            conn.executescript(SCHEMA)

    @classmethod
    def from_url(cls, url: str, config: SQLiteStoreConfig | None = None) -> SQLiteStore:
        return cls(path_from_url(url), config)

    def _conn(self) -> sqlite3.Connection:
        """One connection per thread (and per process: a forked child opens its own)."""
        held = getattr(self._local, "conn", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        with self._guard("connect"):
            conn = sqlite3.connect(
                self.path, timeout=self.config.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        self._local.conn = (os.getpid(), conn)
        with self._lock:
            self._conns.append(conn)
        return conn

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as e:  # cannot open, locked past the busy timeout, disk I/O
            raise StoreUnavailable(f"store: sqlite {self.path} is unavailable ({what}): {e}") from e
        except sqlite3.Error as e:
            raise StoreError(f"store: sqlite {self.path} failed ({what}): {e}") from e
        except UnicodeEncodeError as e:
            raise InvalidInput(f"store: ids must be valid unicode ({what}): {e}") from e

    @contextmanager
    def _tx(self, what: str, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        with self._guard(what):
            # IMMEDIATE takes the writer lock up front: no deadlock-prone lock upgrade later
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- writing ------------------------------------------------------------------------------

    def publish(
        self, snapshot: StoreSnapshot, *, activate: bool = True, progress: Progress | None = None
    ) -> None:
        prep = prepare(snapshot)
        v = prep.version
        dims = prep.dims
        head = json.dumps({"meta": json.loads(prep.meta_json), "features": prep.names})
        with self._tx(f"publish {v}", write=True) as c:
            row = c.execute("SELECT state FROM versions WHERE version = ?", (v,)).fetchone()
            if row is not None and row[0] == "ready":
                raise StoreError(f"store: version {v} is already published in {self.path}")
            self._delete_version(c, v)  # leftovers of a failed attempt
            c.execute(
                "INSERT INTO versions VALUES (?, ?, 'pending', ?, ?, ?)",
                (v, time.time(), dims.get("user"), dims["item"], head),
            )
        done, total = 0, prep.total
        records = self._records(prep)
        while batch := list(islice(records, self.config.batch_size)):
            with self._tx(f"publish {v}", write=True) as c:
                c.executemany("INSERT INTO vectors VALUES (?, ?, ?, ?)", [r[1:] for r in batch if r[0]])
                c.executemany("INSERT INTO recall VALUES (?, ?, ?, ?)", [r[1:] for r in batch if not r[0]])
                c.execute("UPDATE versions SET created_at = ? WHERE version = ?", (time.time(), v))
            done += len(batch)
            if progress is not None:
                progress(done, total)
        with self._tx(f"publish {v}", write=True) as c:
            cur = c.execute(
                "UPDATE versions SET state = 'ready', created_at = ? WHERE version = ? AND state = 'pending'",
                (time.time(), v),
            )
            if cur.rowcount != 1:
                raise StoreError(f"store: version {v} was pruned while it was being published")
        if activate:
            self._set_active(v)
        prune_after_publish(self, self.config.keep_versions)

    @staticmethod
    def _records(prep: PreparedSnapshot) -> Iterator[tuple[bool, str, str, str, bytes]]:
        """(is_vector, version, entity-or-channel, id-or-key, blob)."""
        v = prep.version
        for entity, matrix in prep.matrices.items():
            for ident, blob in zip(prep.ids[entity], encode_rows(matrix), strict=True):
                yield True, v, entity, ident, blob
        for channel, lists in prep.recall.items():
            for key, items in lists.items():
                yield False, v, channel, key, encode_recall(items)

    @staticmethod
    def _delete_version(c: sqlite3.Connection, version: str) -> None:
        for table in ("versions", "vectors", "recall"):
            c.execute(f"DELETE FROM {table} WHERE version = ?", (version,))

    def _set_active(self, version: str) -> None:
        with self._tx(f"activate {version}", write=True) as c:
            if c.execute(_VERSION_SQL, (version,)).fetchone() is None:
                raise StoreError(f"store: cannot activate {version}: not published in {self.path}")
            c.execute(
                "INSERT INTO active VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                (version,),
            )

    def activate(self, version: str) -> None:
        self._set_active(check_name("version", version))

    def prune(self, keep: int) -> list[str]:
        check_keep(keep)
        cutoff = time.time() - self.config.pending_grace_s
        with self._tx("prune") as c:
            complete = [
                r[0]
                for r in c.execute(
                    "SELECT version FROM versions WHERE state = 'ready' ORDER BY created_at DESC, rowid DESC"
                )
            ]
            stale = [
                r[0]
                for r in c.execute(
                    "SELECT version FROM versions WHERE state = 'pending' AND created_at < ?", (cutoff,)
                )
            ]
        dropped: list[str] = []
        for v in complete[keep:] + stale:
            # one transaction each, re-checking the active pointer inside it
            with self._tx(f"prune {v}", write=True) as c:
                active = c.execute("SELECT version FROM active").fetchone()
                if active is not None and active[0] == v:
                    continue
                self._delete_version(c, v)
            if v not in stale:
                dropped.append(v)
        return dropped

    # -- reading ------------------------------------------------------------------------------

    @staticmethod
    def _resolve(c: sqlite3.Connection, version: str | None, where: Path) -> tuple[str, int | None, int]:
        if version is None:
            row = c.execute(_ACTIVE_SQL).fetchone()
            if row is None:
                raise VersionMissing(f"store: no active version in {where}")
        else:
            row = c.execute(_VERSION_SQL, (check_name("version", version),)).fetchone()
            if row is None:
                raise VersionMissing(f"store: version {version} is not published in {where}")
        return row

    @staticmethod
    def _select_in(
        c: sqlite3.Connection, sql: str, head: tuple[Any, ...], ids: Sequence[str]
    ) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), IN_CHUNK):
            chunk = unique[start : start + IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(c.execute(sql.format(marks=marks), (*head, *chunk)).fetchall())
        return found

    def lookup(self, user_id: str, item_ids: list[str], version: str | None = None) -> Lookup:
        with self._tx("lookup") as c:
            v, user_dim, item_dim = self._resolve(c, version, self.path)
            user_row = c.execute(
                "SELECT blob FROM vectors WHERE version = ? AND entity = 'user' AND id = ?", (v, user_id)
            ).fetchone()
            rows = self._select_in(
                c,
                "SELECT id, blob FROM vectors WHERE version = ? AND entity = 'item' AND id IN ({marks})",
                (v,),
                item_ids,
            )
        user = None if user_row is None or user_dim is None else decode_vector(user_row[0], user_dim)
        items, found = decode_rows([rows.get(i) for i in item_ids], item_dim)
        return Lookup(version=v, user=user, items=items, found=found, served_by=self.name)

    def recall(self, channel: str, keys: list[str], version: str | None = None) -> dict[str, RecallList]:
        check_name("recall channel", channel)
        with self._tx("recall") as c:
            v = self._resolve(c, version, self.path)[0]
            rows = self._select_in(
                c,
                "SELECT key, blob FROM recall WHERE version = ? AND channel = ? AND key IN ({marks})",
                (v, channel),
                keys,
            )
        return {k: decode_recall(rows[k]) if k in rows else [] for k in keys}

    def export(self, version: str) -> StoreSnapshot:
        with self._tx(f"export {version}") as c:
            v, user_dim, item_dim = self._resolve(c, version, self.path)
            head = json.loads(c.execute("SELECT meta FROM versions WHERE version = ?", (v,)).fetchone()[0])
            blocks: dict[str, FeatureBlock] = {}
            for entity, dim in (("user", user_dim), ("item", item_dim)):
                if dim is None:
                    continue
                rows = c.execute(
                    "SELECT id, blob FROM vectors WHERE version = ? AND entity = ? ORDER BY id", (v, entity)
                ).fetchall()
                values, _ = decode_rows([blob for _, blob in rows], dim)
                names = head["features"][entity]
                blocks[entity] = FeatureBlock(entity, [i for i, _ in rows], names, values)
            recall: dict[str, dict[str, RecallList]] = {}
            for channel, key, blob in c.execute(
                "SELECT channel, key, blob FROM recall WHERE version = ?", (v,)
            ):
                recall.setdefault(channel, {})[key] = decode_recall(blob)
        return StoreSnapshot(version=v, blocks=blocks, recall=recall, meta=head["meta"])

    def active_version(self) -> str | None:
        with self._tx("active_version") as c:
            row = c.execute(_ACTIVE_SQL).fetchone()
        return None if row is None else row[0]

    def versions(self) -> list[str]:
        with self._tx("versions") as c:
            rows = c.execute(
                "SELECT version FROM versions WHERE state = 'ready' ORDER BY created_at DESC, rowid DESC"
            ).fetchall()
        return [r[0] for r in rows]

    def _head(self, version: str | None) -> dict[str, Any]:
        with self._tx("meta") as c:
            v = self._resolve(c, version, self.path)[0]
            raw = c.execute("SELECT meta FROM versions WHERE version = ?", (v,)).fetchone()[0]
        return json.loads(raw)

    def meta(self, version: str | None = None) -> dict[str, Any]:
        return self._head(version)["meta"]

    def feature_names(self, entity: str, version: str | None = None) -> list[str]:
        check_entity(entity)
        return self._head(version)["features"].get(entity, [])

    def ping(self) -> None:
        with self._guard("ping"):
            self._conn().execute("SELECT 1 FROM active LIMIT 1").fetchall()

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
