"""The online store: versioned feature vectors and recall lists for the serving path.

``open_store(url, **options)`` picks the backend by URL scheme; see ``base.OnlineStore`` for the
interface and ``redis_store`` / ``sqlite_store`` for the layouts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from recsys.errors import ConfigError
from recsys.redaction import redact
from recsys.store.base import FeatureBlock, Lookup, OnlineStore, StoreConfig, StoreSnapshot, UserView
from recsys.store.fallback import FallbackStore


def _config(cls: type[BaseModel], url: str, options: dict[str, Any]) -> Any:
    try:
        return cls(**options)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"store: option {field} for {redact(url)}: {err['msg']}") from e


def _open_redis(url: str, options: dict[str, Any]) -> OnlineStore:
    from recsys.store.redis_store import RedisStore, RedisStoreConfig

    return RedisStore(url, _config(RedisStoreConfig, url, options))


def _open_sqlite(url: str, options: dict[str, Any]) -> OnlineStore:
    from recsys.store.sqlite_store import SQLiteStore, SQLiteStoreConfig

    return SQLiteStore.from_url(url, _config(SQLiteStoreConfig, url, options))


# scheme -> opener; the one place that knows the backends
BACKENDS: dict[str, Callable[[str, dict[str, Any]], OnlineStore]] = {
    "redis": _open_redis,
    "rediss": _open_redis,
    "sqlite": _open_sqlite,
}


def open_store(url: str, **options: Any) -> OnlineStore:
    """The store behind ``url``; ``options`` are the backend's config fields (ConfigError if unknown)."""
    scheme = url.split("://", 1)[0].lower() if isinstance(url, str) and "://" in url else ""
    opener = BACKENDS.get(scheme)
    if opener is None:
        supported = ", ".join(f"{s}://" for s in BACKENDS)
        raise ConfigError(
            f"store: unsupported store URL {redact(str(url))!r} (supported schemes: {supported})"
        )
    return opener(url, options)


__all__ = [
    "BACKENDS",
    "FallbackStore",
    "FeatureBlock",
    "Lookup",
    "UserView",
    "OnlineStore",
    "StoreConfig",
    "StoreSnapshot",
    "open_store",
]
