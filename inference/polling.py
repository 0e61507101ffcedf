"""A background reload poller, shared by the predictor and the transformer models.

A daemon thread, not an asyncio task: reloads block (MLflow, file reads) and the thread needs
no hook into the server's event loop. ``start`` is idempotent (ModelServer calls a model's
``start()`` at registration and a repository load may call it again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from recsys.errors import RecsysError

log = logging.getLogger("kserve.recsys")


class ReloadPoller:
    def __init__(self, name: str, seconds: float, reload: Callable[[], object]) -> None:
        self.name, self.seconds, self._reload = name, seconds, reload
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.seconds <= 0 or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"recsys-poll-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self._reload()
            except RecsysError as e:
                # a half-copied bundle or a registry blip: keep serving, try again next tick
                log.warning("model %s: polling reload: %s", self.name, e)
