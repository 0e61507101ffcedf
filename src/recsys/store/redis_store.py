"""Redis backend (redis-py): one string key per vector / recall list, all under a namespace.

Key layout (``ns`` = namespace, ``v`` = version)::

    {ns}:active               the active version (one SET switches it)
    {ns}:versions             zset version -> publish time, complete versions only
    {ns}:pending              zset version -> last write time, publishes in progress or failed
    {ns}:{v}:dims             b"<user_dim>,<item_dim>" (user_dim -1: no user block); written last,
                              deleted first, so it marks a complete version
    {ns}:{v}:meta             JSON {"meta": ..., "features": {entity: names}}
    {ns}:{v}:u:{user_id}      float32 LE vector
    {ns}:{v}:i:{item_id}      float32 LE vector
    {ns}:{v}:r:{channel}:{key}  packed recall list (codec.py)

A lookup is one MGET of ``active``, ``{v}:dims``, the user and the items under the cached active
version: MGET is atomic, so a reply that holds ``dims`` holds the complete version, and the
``active`` value in it corrects a stale cache for the next request (or this one, by a second
MGET, when the cached version has been pruned). Steady state: one round trip; cold: two.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

import redis
from pydantic import Field, field_validator
from redis.backoff import NoBackoff
from redis.retry import Retry

from recsys.errors import (
    ConfigError,
    InvalidInput,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    VersionMissing,
)
from recsys.redaction import redact
from recsys.store.base import (
    Lookup,
    OnlineStore,
    PreparedSnapshot,
    Progress,
    RecallList,
    StoreConfig,
    StoreSnapshot,
    UserView,
    check_entity,
    check_keep,
    check_name,
    prepare,
    prune_after_publish,
)
from recsys.store.codec import decode_recall, decode_rows, decode_vector, encode_recall, encode_rows

# delete the lock only while it still holds our token (it may have expired and been retaken)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RedisStoreConfig(StoreConfig):
    namespace: str = Field("recsys", description="key prefix; several deployments can share a server")
    connect_timeout_s: float = Field(2.0, gt=0)
    socket_timeout_s: float = Field(2.0, gt=0)
    retries: int = Field(1, ge=0, description="immediate retries on a connection error or timeout")
    max_connections: int | None = Field(None, gt=0)
    scan_count: int = Field(1000, gt=0, description="SCAN COUNT hint when pruning")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        try:
            return check_name("namespace", value)
        except InvalidInput as e:
            raise ValueError(e.message) from e


class RedisStore(OnlineStore):
    name = "redis"

    def __init__(self, url: str, config: RedisStoreConfig | None = None) -> None:
        self.config = config or RedisStoreConfig()
        self.safe_url = redact(url)
        try:
            self._client = redis.Redis.from_url(
                url,
                socket_connect_timeout=self.config.connect_timeout_s,
                socket_timeout=self.config.socket_timeout_s,
                # fail fast: the caller (FallbackStore) has somewhere else to go
                retry=Retry(NoBackoff(), self.config.retries),
                max_connections=self.config.max_connections,
            )
        except ValueError as e:
            raise ConfigError(f"store: cannot use {self.safe_url}: {e}") from e
        ns = self.config.namespace
        self._ns = ns
        self._active_key = f"{ns}:active".encode()
        self._versions_key = f"{ns}:versions".encode()
        self._pending_key = f"{ns}:pending".encode()
        self._cached_active: str | None = None

    # -- keys ---------------------------------------------------------------------------------

    def _key(self, version: str, suffix: str) -> bytes:
        return f"{self._ns}:{version}:{suffix}".encode()

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except redis.TimeoutError as e:
            raise StoreTimeout(f"store: redis {self.safe_url} did not answer in time ({what}): {e}") from e
        except redis.ConnectionError as e:
            raise StoreUnavailable(f"store: redis {self.safe_url} is unreachable ({what}): {e}") from e
        except redis.RedisError as e:
            raise StoreError(f"store: redis {self.safe_url} failed ({what}): {e}") from e

    # -- writing ------------------------------------------------------------------------------

    def publish(
        self, snapshot: StoreSnapshot, *, activate: bool = True, progress: Progress | None = None
    ) -> None:
        prep = prepare(snapshot)
        v = prep.version
        with self._guard(f"publish {v}"):
            if self._client.zscore(self._versions_key, v) is not None:
                raise StoreError(f"store: version {v} is already published in {self.safe_url}")
            if self._client.zscore(self._pending_key, v) is not None:
                self._unlink_version(v)  # leftovers of a failed attempt must not shadow missing ids
            self._client.zadd(self._pending_key, {v: time.time()})
            done, total = 0, prep.total
            records = self._records(prep)
            while batch := list(islice(records, self.config.batch_size)):
                pipe = self._client.pipeline(transaction=False)
                pipe.mset(dict(batch))
                pipe.zadd(self._pending_key, {v: time.time()})  # heartbeat: prune spares it
                pipe.execute()
                done += len(batch)
                if progress is not None:
                    progress(done, total)
            dims = prep.dims
            head = {"meta": json.loads(prep.meta_json), "features": prep.names}
            pipe = self._client.pipeline(transaction=True)
            pipe.set(self._key(v, "meta"), json.dumps(head))
            pipe.set(self._key(v, "dims"), f"{dims.get('user', -1)},{dims['item']}")
            pipe.zadd(self._versions_key, {v: time.time()})
            pipe.zrem(self._pending_key, v)
            pipe.execute()
            if activate:
                self._client.set(self._active_key, v)
                self._cached_active = v
        prune_after_publish(self, self.config.keep_versions)

    def _records(self, prep: PreparedSnapshot) -> Iterator[tuple[bytes, bytes]]:
        v = prep.version
        for entity, matrix in prep.matrices.items():
            prefix = self._key(v, "u:" if entity == "user" else "i:")
            yield from zip((prefix + i.encode() for i in prep.ids[entity]), encode_rows(matrix), strict=True)
        for channel, lists in prep.recall.items():
            prefix = self._key(v, f"r:{channel}:")
            for key, items in lists.items():
                yield prefix + key.encode(), encode_recall(items)

    def activate(self, version: str) -> None:
        check_name("version", version)
        dims_key = self._key(version, "dims")
        with self._guard(f"activate {version}"), self._client.pipeline() as pipe:
            try:
                # WATCH dims so that a concurrent prune of this version aborts the switch
                pipe.watch(dims_key)
                if not pipe.exists(dims_key):
                    raise StoreError(f"store: cannot activate {version}: not published in {self.safe_url}")
                pipe.multi()
                pipe.set(self._active_key, version)
                pipe.execute()
            except redis.WatchError as e:
                raise StoreError(f"store: cannot activate {version}: it is being pruned") from e
        self._cached_active = version

    def prune(self, keep: int) -> list[str]:
        check_keep(keep)
        with self._guard("prune"):
            complete = [v.decode() for v in self._client.zrevrange(self._versions_key, 0, -1)]
            cutoff = time.time() - self.config.pending_grace_s
            stale = [v.decode() for v in self._client.zrangebyscore(self._pending_key, "-inf", cutoff)]
            dropped: list[str] = []
            for v in complete[keep:]:
                if self._retire(v):
                    dropped.append(v)
            for v in dropped + stale:
                self._unlink_version(v)
        return dropped

    def _retire(self, version: str) -> bool:
        """Unpublish one version unless it is active; its keys are then garbage (pending)."""
        with self._client.pipeline() as pipe:
            try:
                pipe.watch(self._active_key)  # an activate in between aborts the retirement
                active = pipe.get(self._active_key)
                if active is not None and active.decode() == version:
                    return False
                pipe.multi()
                pipe.delete(self._key(version, "dims"), self._key(version, "meta"))
                pipe.zrem(self._versions_key, version)
                pipe.zadd(self._pending_key, {version: 0})
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    def _unlink_version(self, version: str) -> None:
        # names are validated to hold no glob characters, so the prefix is a literal pattern
        keys = self._client.scan_iter(match=f"{self._ns}:{version}:*", count=self.config.scan_count)
        while batch := list(islice(keys, self.config.batch_size)):
            self._client.unlink(*batch)
        self._client.zrem(self._pending_key, version)

    @contextmanager
    def exclusive(self, what: str, ttl_s: float) -> Iterator[bool]:
        """A lock key with an expiry (SET NX PX), released only by its holder."""
        key, token = f"{self._ns}:lock:{what}".encode(), uuid.uuid4().hex.encode()
        with self._guard(f"lock {what}"):
            held = bool(self._client.set(key, token, nx=True, px=int(ttl_s * 1000)))
        try:
            yield held
        finally:
            if held:
                with self._guard(f"unlock {what}"):
                    self._client.eval(_RELEASE, 1, key, token)

    def purge(self) -> int:
        """Delete every key of the namespace (tests, benchmarks, decommissioning)."""
        n = 0
        with self._guard("purge"):
            keys = self._client.scan_iter(match=f"{self._ns}:*", count=self.config.scan_count)
            while batch := list(islice(keys, self.config.batch_size)):
                n += self._client.unlink(*batch)
        self._cached_active = None
        return n

    # -- reading ------------------------------------------------------------------------------

    def _fetch(self, version: str | None, build: Callable[[str], list[bytes]]) -> tuple[str, list[Any]]:
        """MGET ``[{v}:dims, *build(v)]`` under ``version`` or the active one; see the module doc."""
        if version is not None:
            check_name("version", version)
            values = self._client.mget([self._key(version, "dims"), *build(version)])
            if values[0] is None:
                raise VersionMissing(f"store: version {version} is not published in {self.safe_url}")
            return version, values
        v = self._cached_active
        retry = True
        if v is None:
            v = self._read_active()
        while True:
            active, *values = self._client.mget([self._active_key, self._key(v, "dims"), *build(v)])
            current = active.decode() if active is not None else None
            self._cached_active = current
            # an older version that is still complete is a consistent answer: one request late
            if values[0] is not None:
                return v, values
            if current is None:
                raise VersionMissing(f"store: no active version in {self.safe_url}")
            if not retry or current == v:
                raise VersionMissing(f"store: active version {v} is incomplete in {self.safe_url}")
            v, retry = current, False

    def _read_active(self) -> str:
        active = self._client.get(self._active_key)
        if active is None:
            raise VersionMissing(f"store: no active version in {self.safe_url}")
        self._cached_active = active.decode()
        return self._cached_active

    def lookup(self, user_id: str, item_ids: list[str], version: str | None = None) -> Lookup:
        def keys(v: str) -> list[bytes]:
            prefix = self._key(v, "i:")
            return [self._key(v, "u:") + user_id.encode(), *[prefix + i.encode() for i in item_ids]]

        with self._guard("lookup"):
            try:
                v, values = self._fetch(version, keys)
            except UnicodeEncodeError as e:
                raise InvalidInput(f"store: lookup ids must be valid unicode: {e}") from e
        user_dim, item_dim = (int(x) for x in values[0].split(b","))
        user = None if values[1] is None else decode_vector(values[1], user_dim)
        items, found = decode_rows(values[2:], item_dim)
        return Lookup(version=v, user=user, items=items, found=found, served_by=self.name)

    def recall(self, channel: str, keys: list[str], version: str | None = None) -> dict[str, RecallList]:
        check_name("recall channel", channel)

        def build(v: str) -> list[bytes]:
            prefix = self._key(v, f"r:{channel}:")
            return [prefix + k.encode() for k in keys]

        with self._guard("recall"):
            try:
                _, values = self._fetch(version, build)
            except UnicodeEncodeError as e:
                raise InvalidInput(f"store: recall keys must be valid unicode: {e}") from e
        return {k: [] if b is None else decode_recall(b) for k, b in zip(keys, values[1:], strict=True)}

    def user_view(self, user_id: str, channels: Sequence[str], version: str) -> UserView:
        """One MGET: dims, the user's vector and the user's list of each of ``channels``."""
        for channel in channels:
            check_name("recall channel", channel)

        def keys(v: str) -> list[bytes]:
            user = user_id.encode()
            return [self._key(v, "u:") + user, *(self._key(v, f"r:{c}:") + user for c in channels)]

        with self._guard("user_view"):
            try:
                v, values = self._fetch(version, keys)
            except UnicodeEncodeError as e:
                raise InvalidInput(f"store: user ids must be valid unicode: {e}") from e
        user_dim = int(values[0].split(b",")[0])
        user = None if values[1] is None else decode_vector(values[1], user_dim)
        lists = {c: [] if b is None else decode_recall(b) for c, b in zip(channels, values[2:], strict=True)}
        return UserView(version=v, user=user, lists=lists, served_by=self.name)

    def active_version(self) -> str | None:
        with self._guard("active_version"):
            active = self._client.get(self._active_key)
        self._cached_active = active.decode() if active is not None else None
        return self._cached_active

    def versions(self) -> list[str]:
        with self._guard("versions"):
            return [v.decode() for v in self._client.zrevrange(self._versions_key, 0, -1)]

    def _head(self, version: str | None) -> dict[str, Any]:
        with self._guard("meta"):
            v = check_name("version", version) if version is not None else self._read_active()
            raw = self._client.get(self._key(v, "meta"))
        if raw is None:
            raise VersionMissing(f"store: version {v} is not published in {self.safe_url}")
        return json.loads(raw)

    def meta(self, version: str | None = None) -> dict[str, Any]:
        return self._head(version)["meta"]

    def feature_names(self, entity: str, version: str | None = None) -> list[str]:
        check_entity(entity)
        return self._head(version)["features"].get(entity, [])

    def ping(self) -> None:
        with self._guard("ping"):
            self._client.ping()

    def close(self) -> None:
        self._client.close()
