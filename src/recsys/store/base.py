"""The online store interface: versioned feature vectors and recall lists for serving.

The offline pipeline publishes a ``StoreSnapshot`` under a version (the model bundle's); the
transformer reads one user and a few hundred candidate items per request from the active
version, or from a pinned one during a canary. A version is immutable once published, so a
reader that resolved a version sees one consistent set of vectors whatever a publisher does.
"""

from __future__ import annotations

import json
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recsys.errors import InvalidInput, StoreError

log = logging.getLogger(__name__)

ENTITIES = ("user", "item")
# versions, channels and namespaces become parts of Redis keys and SCAN patterns: no ':' (the
# separator), no glob characters, no whitespace
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")

Progress = Callable[[int, int], None]
RecallList = list[tuple[str, float]]


@dataclass
class FeatureBlock:
    """One entity's feature matrix: row ``k`` holds the features of ``ids[k]``."""

    entity: str
    ids: list[str]
    names: list[str]
    values: np.ndarray


@dataclass
class StoreSnapshot:
    """Everything one version publishes; ``recall`` is channel -> key -> ordered (item, score)."""

    version: str
    blocks: dict[str, FeatureBlock]
    recall: dict[str, dict[str, RecallList]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Lookup:
    """One request's vectors; rows of unknown items are NaN and ``found`` is False there."""

    version: str
    user: np.ndarray | None
    items: np.ndarray
    found: np.ndarray
    served_by: str


@dataclass
class UserView:
    """What serving reads about one user before recall: the vector and a few lists keyed by the
    user (their history and seen items), of one version; a list the store lacks is empty."""

    version: str
    user: np.ndarray | None
    lists: dict[str, RecallList]
    served_by: str


class StoreConfig(BaseModel):
    """Options every backend shares; ``open_store(url, **options)`` validates them."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(1000, gt=0, description="records written per round trip / transaction")
    keep_versions: int = Field(
        5, ge=0, description="publish prunes to this many versions afterwards; 0 keeps everything"
    )
    pending_grace_s: float = Field(
        3600.0, gt=0, description="an unfinished publish older than this is garbage for prune"
    )


class OnlineStore(ABC):
    """One interface over Redis and SQLite; see the module docstring for the version model."""

    name: str

    @abstractmethod
    def publish(
        self, snapshot: StoreSnapshot, *, activate: bool = True, progress: Progress | None = None
    ) -> None:
        """Write everything under the version, then switch the active pointer in one step."""

    @abstractmethod
    def activate(self, version: str) -> None:
        """Make a published version the active one (rollback, canary promotion)."""

    @abstractmethod
    def active_version(self) -> str | None: ...

    @abstractmethod
    def versions(self) -> list[str]:
        """Completely published versions, newest first."""

    @abstractmethod
    def meta(self, version: str | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def feature_names(self, entity: str, version: str | None = None) -> list[str]: ...

    @abstractmethod
    def lookup(self, user_id: str, item_ids: list[str], version: str | None = None) -> Lookup: ...

    @abstractmethod
    def recall(self, channel: str, keys: list[str], version: str | None = None) -> dict[str, RecallList]:
        """Every requested key, with ``[]`` for keys the channel lacks."""

    def user_view(self, user_id: str, channels: Sequence[str], version: str) -> UserView:
        """The user's vector and each of ``channels``' list for the user, of ``version``. A
        backend that can read them in one round trip overrides this (serving calls it on every
        request)."""
        lists = {c: self.recall(c, [user_id], version)[user_id] for c in channels}
        lookup = self.lookup(user_id, [], version)
        return UserView(version=lookup.version, user=lookup.user, lists=lists, served_by=lookup.served_by)

    def export(self, version: str) -> StoreSnapshot:
        """Everything ``version`` holds, as a snapshot that publishes it again (a fallback
        store refills a primary that came back empty). Backends that serve as a fallback
        implement it."""
        raise StoreError(f"store: the {self.name} backend cannot export a version")

    @contextmanager
    def exclusive(self, what: str, ttl_s: float) -> Iterator[bool]:
        """Whether this caller may do ``what`` now, held until the block ends or ``ttl_s``
        passes: a store shared by several processes lets one of them repair it."""
        yield True

    @abstractmethod
    def prune(self, keep: int) -> list[str]:
        """Drop all but the newest ``keep`` versions, never the active one; returns the dropped."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable when the backend cannot be reached."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidInput(
            f"store: {kind} {value!r} is invalid (1-128 of A-Z a-z 0-9 . _ + -, starting alphanumeric)"
        )
    return value


def check_entity(entity: str) -> str:
    if entity not in ENTITIES:
        raise InvalidInput(f"store: entity {entity!r} is unknown (expected one of {', '.join(ENTITIES)})")
    return entity


def check_keep(keep: int) -> int:
    if keep < 1:
        raise InvalidInput(f"store: prune keep={keep} must be >= 1")
    return keep


@dataclass
class PreparedSnapshot:
    """A validated snapshot in the shape both backends write."""

    version: str
    matrices: dict[str, np.ndarray]  # entity -> contiguous little-endian float32
    ids: dict[str, list[str]]
    names: dict[str, list[str]]
    recall: dict[str, dict[str, RecallList]]
    meta_json: str

    @property
    def dims(self) -> dict[str, int]:
        return {e: len(n) for e, n in self.names.items()}

    @property
    def total(self) -> int:
        """Records to write, the unit of the progress callback."""
        return sum(len(i) for i in self.ids.values()) + sum(len(c) for c in self.recall.values())


def prepare(snapshot: StoreSnapshot) -> PreparedSnapshot:
    """Validate a snapshot before anything is written, naming the offending block or channel."""
    version = check_name("version", snapshot.version)
    if "item" not in snapshot.blocks:
        raise InvalidInput(f"store: snapshot {version} has no 'item' feature block")
    matrices: dict[str, np.ndarray] = {}
    for key, block in snapshot.blocks.items():
        check_entity(key)
        if block.entity != key:
            raise InvalidInput(f"store: block {key!r} says entity={block.entity!r}")
        try:
            values = np.ascontiguousarray(block.values, dtype="<f4")
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"store: {key} values are not numeric: {e}") from e
        if values.shape != (len(block.ids), len(block.names)):
            raise InvalidInput(
                f"store: {key} values have shape {values.shape}, expected "
                f"({len(block.ids)} ids, {len(block.names)} features)"
            )
        if len(set(block.ids)) != len(block.ids):
            raise InvalidInput(f"store: {key} ids are not unique")
        if len(set(block.names)) != len(block.names):
            raise InvalidInput(f"store: {key} feature names are not unique")
        matrices[key] = values
        _check_text(f"{key} ids", block.ids)
    for channel, lists in snapshot.recall.items():
        check_name("recall channel", channel)
        for key, items in lists.items():
            if not isinstance(key, str):
                raise InvalidInput(f"store: recall {channel}: key {key!r} is not a string")
            for pair in items:
                if not _good_pair(pair):
                    raise InvalidInput(f"store: recall {channel}/{key}: bad entry {pair!r}")
        _check_text(f"recall {channel} keys", lists)
        _check_text(f"recall {channel} items", [item for items in lists.values() for item, _ in items])
    try:
        meta_json = json.dumps(snapshot.meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"store: meta of {version} is not JSON-serializable: {e}") from e
    return PreparedSnapshot(
        version=version,
        matrices=matrices,
        ids={k: list(b.ids) for k, b in snapshot.blocks.items()},
        names={k: list(b.names) for k, b in snapshot.blocks.items()},
        recall=snapshot.recall,
        meta_json=meta_json,
    )


def prune_after_publish(store: OnlineStore, keep: int) -> None:
    """Housekeeping after a publish; the publish itself succeeded, so a failure only warns."""
    if not keep:
        return
    try:
        store.prune(keep)
    except StoreError as e:
        log.warning("store: pruning %s to %d versions after publish failed: %s", store.name, keep, e)


def _check_text(kind: str, strings: Iterable[str]) -> None:
    """Ids become UTF-8 keys; refuse what cannot be encoded before anything is written."""
    try:
        "".join(strings).encode()
    except (TypeError, UnicodeEncodeError) as e:
        raise InvalidInput(f"store: {kind} must be strings encodable as UTF-8: {e}") from e


def _good_pair(pair: Any) -> bool:
    try:
        item, score = pair
        return isinstance(item, str) and math.isfinite(score)
    except (TypeError, ValueError):
        return False
