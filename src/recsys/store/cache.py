"""Item vectors of one published version, kept in process in front of the online store.

A version's vectors never change once published (``publish`` writes a version completely, then
``activate`` switches to it), so a cached row can never be stale: serving caches the rows of the
version it serves and asks the store only for items it has not seen yet, plus the user's vector
unless the caller read it already (``user``: serving reads it with the history, ``user_view``),
in which case a lookup of cached items makes no store call at all. A new bundle (a new version)
gets a new cache. Items the store does not hold under the version are remembered as missing too.

Bounded: at ``max_items`` rows the cache starts over (one full lookup's cost, no per-read
bookkeeping); the default (100k rows of ~100 float32 = ~40 MB) holds a mid-size catalogue.
"""

from __future__ import annotations

import threading

import numpy as np

from recsys.errors import InvalidInput
from recsys.store.base import Lookup, OnlineStore, UserView

MISSING = -1  # the store has no vector for the item under this version


class ItemVectorCache:
    def __init__(self, version: str, dim: int, max_items: int = 100_000) -> None:
        if max_items <= 0:
            raise InvalidInput(f"item cache: max_items must be positive, got {max_items}")
        self.version, self.dim, self.max_items = version, dim, max_items
        self._lock = threading.Lock()
        self._slot: dict[str, int] = {}
        self._rows = np.empty((min(1024, max_items), dim), np.float32)
        self._used = 0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._slot)

    def lookup(
        self, store: OnlineStore, user_id: str, item_ids: list[str], user: UserView | None = None
    ) -> Lookup:
        """``store.lookup(user_id, item_ids, version)``, with known items answered from memory
        and the user's vector from ``user`` when given. The store is read without the lock held,
        so concurrent requests do not wait for each other."""
        slot = self._slot
        missing = [i for i in dict.fromkeys(item_ids) if i not in slot]
        if missing or user is None:
            fresh = store.lookup(user_id, missing, self.version)
            if user is not None:  # the vector read with the history is this request's
                fresh.user = user.user
        else:
            fresh = Lookup(self.version, user.user, self._rows[:0], np.zeros(0, bool), user.served_by)
        with self._lock:
            if missing:
                self._add(missing, fresh.items, fresh.found)
            get = self._slot.get
            slots = np.fromiter((get(i, -2) for i in item_ids), np.int64, len(item_ids))
            evicted = bool((slots == -2).any())  # the cache started over since this request looked
            if not evicted:
                found = slots != MISSING
                items = self._rows[np.where(found, slots, 0)]
                self.misses += len(missing)
                self.hits += len(item_ids) - len(missing)
        if evicted:
            return store.lookup(user_id, item_ids, self.version)
        items[~found] = np.nan
        return Lookup(version=fresh.version, user=fresh.user, items=items, found=found,
                      served_by=fresh.served_by)  # fmt: skip

    def _add(self, ids: list[str], rows: np.ndarray, found: np.ndarray) -> None:
        new = [i for i in ids if i not in self._slot]  # another request may have added some
        if self._used + len(new) > self.max_items:
            self._slot, self._used = {}, 0
            new = ids
        need = self._used + len(new)
        if need > len(self._rows):
            grown = np.empty((min(max(need, 2 * len(self._rows)), max(self.max_items, need)), self.dim),
                             np.float32)  # fmt: skip
            grown[: self._used] = self._rows[: self._used]
            self._rows = grown
        position = {item: n for n, item in enumerate(ids)}
        for item in new:
            n = position[item]
            if found[n]:
                self._rows[self._used] = rows[n]
                self._slot[item] = self._used
                self._used += 1
            else:
                self._slot[item] = MISSING
