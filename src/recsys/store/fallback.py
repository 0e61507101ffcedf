"""Reads from a primary store (Redis) that fall back to a second one (SQLite) when it is down."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from recsys.errors import StoreUnavailable
from recsys.resilience import CircuitBreaker
from recsys.store.base import Lookup, OnlineStore, Progress, RecallList, StoreSnapshot, UserView

log = logging.getLogger(__name__)
T = TypeVar("T")


class FallbackStore(OnlineStore):
    """``Lookup.served_by`` tells which store answered; only StoreUnavailable falls back, so an
    unknown version or a corrupt value in the primary still surfaces as an error.

    Reads go through a circuit breaker around the primary: after a few failures in a row they
    go straight to the fallback for a while instead of paying the primary's connect or socket
    timeout on every request of an outage; then one trial read tells whether it is back.
    """

    name = "fallback"

    def __init__(
        self,
        primary: OnlineStore,
        fallback: OnlineStore,
        breaker: CircuitBreaker | None = None,
        on_unavailable: Callable[[StoreUnavailable], None] | None = None,
    ) -> None:
        """``on_unavailable`` hears of every primary failure that sent a read to the fallback."""
        self.primary = primary
        self.fallback = fallback
        self.on_unavailable = on_unavailable
        self.breaker = breaker or CircuitBreaker(primary.name, failure_threshold=3, reset_timeout_s=2.0)
        self._degraded = False

    def _read(self, call: Callable[[OnlineStore], T]) -> T:
        if not self.breaker.allow():
            return call(self.fallback)
        try:
            result = call(self.primary)
        except StoreUnavailable as e:
            self.breaker.record_failure()
            if self.on_unavailable is not None:
                self.on_unavailable(e)
            if not self._degraded:  # log transitions, not every request of an outage
                log.warning(
                    "store: %s unavailable, reading from %s: %s", self.primary.name, self.fallback.name, e
                )
                self._degraded = True
            return call(self.fallback)
        except BaseException:
            self.breaker.record_success()  # it answered (an unknown version, say): not an outage
            raise
        self.breaker.record_success()
        if self._degraded:
            log.warning("store: %s is back, reading from it again", self.primary.name)
            self._degraded = False
        return result

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
        return self._read(lambda s: s.meta(version))

    def feature_names(self, entity: str, version: str | None = None) -> list[str]:
        return self._read(lambda s: s.feature_names(entity, version))

    def lookup(self, user_id: str, item_ids: list[str], version: str | None = None) -> Lookup:
        return self._read(lambda s: s.lookup(user_id, item_ids, version))

    def recall(self, channel: str, keys: list[str], version: str | None = None) -> dict[str, RecallList]:
        return self._read(lambda s: s.recall(channel, keys, version))

    def user_view(self, user_id: str, channels: Sequence[str], version: str) -> UserView:
        return self._read(lambda s: s.user_view(user_id, channels, version))

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
