"""Reads from a primary store (Redis) that fall back to a second one (SQLite) when it is down or
empty, and the refill of an empty primary from the fallback."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from recsys.errors import RecsysError, StoreError, StoreUnavailable, VersionMissing
from recsys.resilience import CircuitBreaker
from recsys.store.base import Lookup, OnlineStore, Progress, RecallList, StoreSnapshot, UserView

log = logging.getLogger(__name__)
T = TypeVar("T")


class FallbackStore(OnlineStore):
    """``Lookup.served_by`` tells which store answered. A primary that cannot be reached or
    that lacks the version asked for (``VersionMissing``: a Redis restarted empty, say) sends
    the read to the fallback; any other error (a corrupt value) surfaces.

    Reads go through a circuit breaker around the primary: after a few failures in a row they
    go straight to the fallback for a while instead of paying the primary's connect or socket
    timeout on every request of an outage; then one trial read tells whether it is back. Both
    changes of state are logged once, not once per request.

    With ``repairer`` (it opens the primary with its own connections and timeouts), a primary
    found with no active version is refilled from the fallback in a background thread: the
    fallback's active version and the versions reads asked for, then the fallback's active one
    activated. One process at a time does it (``OnlineStore.exclusive``). A primary that has an
    active version but lacks another is left alone: a publish may be writing it.
    """

    name = "fallback"
    REPAIR_EVERY_S = 10.0  # at most one repair attempt per this many seconds and process
    REPAIR_LOCK_S = 300.0

    def __init__(
        self,
        primary: OnlineStore,
        fallback: OnlineStore,
        breaker: CircuitBreaker | None = None,
        on_unavailable: Callable[[StoreError], None] | None = None,
        repairer: Callable[[], OnlineStore] | None = None,
        on_repair: Callable[[str], None] | None = None,
    ) -> None:
        """``on_unavailable`` hears of every primary failure that sent a read to the fallback;
        ``on_repair`` of every repair's outcome (``repaired``, ``failed``)."""
        self.primary = primary
        self.fallback = fallback
        self.on_unavailable = on_unavailable
        self.breaker = breaker or CircuitBreaker(primary.name, failure_threshold=3, reset_timeout_s=2.0)
        self.repairer = repairer
        self.on_repair = on_repair
        self._degraded = False
        self._wanted: set[str] = set()  # versions reads missed in the primary, for the repair
        self._repair_lock = threading.Lock()
        self._next_repair = 0.0

    def _read(self, call: Callable[[OnlineStore], T], version: str | None = None) -> T:
        if not self.breaker.allow():
            return call(self.fallback)
        try:
            result = call(self.primary)
        except (StoreUnavailable, VersionMissing) as e:
            self.breaker.record_failure()
            if self.on_unavailable is not None:
                self.on_unavailable(e)
            if not self._degraded:  # log transitions, not every request of an outage
                log.warning(
                    "store: %s unavailable, reading from %s: %s", self.primary.name, self.fallback.name, e
                )
                self._degraded = True
            if isinstance(e, VersionMissing):
                self._start_repair(version)
            return call(self.fallback)
        except BaseException:
            self.breaker.record_success()  # it answered (a corrupt value, say): not an outage
            raise
        self.breaker.record_success()
        if self._degraded:
            log.warning("store: %s is back, reading from it again", self.primary.name)
            self._degraded = False
        return result

    def _start_repair(self, version: str | None) -> None:
        if self.repairer is None:
            return
        if version is not None:
            self._wanted.add(version)
        now = time.monotonic()
        if now < self._next_repair or not self._repair_lock.acquire(blocking=False):
            return
        self._next_repair = now + self.REPAIR_EVERY_S
        threading.Thread(target=self._repair, name="recsys-store-repair", daemon=True).start()

    def _repair(self) -> None:
        try:
            outcome = self.repair()
        except RecsysError as e:
            log.warning("store: refilling %s from %s failed: %s", self.primary.name, self.fallback.name, e)
            outcome = "failed"
        finally:
            self._repair_lock.release()
        if outcome and self.on_repair is not None:
            self.on_repair(outcome)

    def repair(self) -> str | None:
        """Refill an empty primary from the fallback (see the class doc); ``repaired``, or
        None when there was nothing to do or another process holds the repair."""
        assert self.repairer is not None
        with self.repairer() as primary, primary.exclusive("repair", self.REPAIR_LOCK_S) as mine:
            if not mine or primary.active_version() is not None:
                return None
            active = self.fallback.active_version()
            have = set(primary.versions())
            known = set(self.fallback.versions())
            todo = [v for v in dict.fromkeys([active, *sorted(self._wanted)]) if v in known and v not in have]
            start = time.monotonic()
            for v in todo:
                primary.publish(self.fallback.export(v), activate=False)
            if active is not None:
                primary.activate(active)
            self._wanted.clear()
            log.warning(
                "store: %s had no active version; re-published %s from %s and activated %s in %.1f s",
                primary.name, ", ".join(todo) or "nothing", self.fallback.name, active,
                time.monotonic() - start,
            )  # fmt: skip
            return "repaired"

    def publish(
        self, snapshot: StoreSnapshot, *, activate: bool = True, progress: Progress | None = None
    ) -> None:
        def part(offset: int) -> Progress | None:
            if progress is None:
                return None
            return lambda done, total: progress(offset * total + done, 2 * total)

        # both written before either switches, so a failed primary leaves both on the old version;
        # a retry after such a failure finds the version already in the fallback and skips it
        if snapshot.version not in self.fallback.versions():
            self.fallback.publish(snapshot, activate=False, progress=part(0))
        self.primary.publish(snapshot, activate=False, progress=part(1))
        if activate:
            self.activate(snapshot.version)

    def activate(self, version: str) -> None:
        self.fallback.activate(version)
        self.primary.activate(version)

    def active_version(self) -> str | None:
        return self._read(lambda s: s.active_version())

    def versions(self) -> list[str]:
        return self._read(lambda s: s.versions())

    def meta(self, version: str | None = None) -> dict[str, Any]:
        return self._read(lambda s: s.meta(version), version)

    def feature_names(self, entity: str, version: str | None = None) -> list[str]:
        return self._read(lambda s: s.feature_names(entity, version), version)

    def lookup(self, user_id: str, item_ids: list[str], version: str | None = None) -> Lookup:
        return self._read(lambda s: s.lookup(user_id, item_ids, version), version)

    def recall(self, channel: str, keys: list[str], version: str | None = None) -> dict[str, RecallList]:
        return self._read(lambda s: s.recall(channel, keys, version), version)

    def user_view(self, user_id: str, channels: Sequence[str], version: str) -> UserView:
        return self._read(lambda s: s.user_view(user_id, channels, version), version)

    def export(self, version: str) -> StoreSnapshot:
        return self._read(lambda s: s.export(version), version)

    def prune(self, keep: int) -> list[str]:
        dropped = self.primary.prune(keep)
        return list(dict.fromkeys(dropped + self.fallback.prune(keep)))

    def ping(self) -> None:
        """Healthy while either store answers: reads are served, degraded or not."""
        self._read(lambda s: s.ping())

    def close(self) -> None:
        try:
            self.primary.close()
        finally:
            self.fallback.close()
