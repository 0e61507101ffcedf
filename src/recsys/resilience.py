"""A circuit breaker: stop calling a dependency that keeps failing, try it again now and then.

closed -> (``failure_threshold`` failures in a row) -> open -> (``reset_timeout_s`` later, one
trial call allowed) -> half_open -> closed on success, open again on failure. While open,
``allow()`` says no at once, so a caller takes its fallback without paying a connect or read
timeout per request during an outage. Thread-safe; the clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]
STATE_VALUE: dict[State, int] = {"closed": 0, "open": 1, "half_open": 2}


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_timeout_s: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, State], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or reset_timeout_s <= 0:
            raise ValueError("circuit breaker: failure_threshold >= 1 and reset_timeout_s > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def allow(self) -> bool:
        """May the caller try the dependency now? In half_open only one trial runs at a time."""
        with self._lock:
            if self._state == "closed":
                return True
            if self._state == "open":
                if self._clock() - self._opened_at < self.reset_timeout_s:
                    return False
                self._set("half_open")
            if self._trial_running:
                return False
            self._trial_running = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._trial_running = False
            if self._state != "closed":
                self._set("closed")

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_running = False
            if self._state == "half_open" or (
                self._state == "closed" and self._failures >= self.failure_threshold
            ):
                self._opened_at = self._clock()
                self._set("open")

    def release(self) -> None:
        """The call was abandoned (cancelled) without a verdict: free the trial slot."""
        with self._lock:
            self._trial_running = False

    def _set(self, state: State) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(self.name, state)
