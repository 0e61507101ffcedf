"""The KServe predictor: a ranker bundle behind the v2 protocol, reloadable without a restart.

Serving state is one immutable ``ServedModel`` behind one attribute. A request reads it once and
uses that snapshot throughout, so a reload (build the new model off the event loop, warm it up,
then assign) never fails or mixes a request: requests in flight finish on the old model, the
next ones get the new one. Loading and scoring run in threads; the event loop only routes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kserve
from fastapi import Request
from fastapi.responses import JSONResponse
from kserve.errors import ModelNotFound
from kserve.model_repository import ModelRepository
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from inference import metrics, protocol
from inference.contract import check_request
from inference.errors import ReloadFailed, RequestError, SchemaMismatch
from inference.model_source import ModelSource, ServedModel
from inference.polling import ReloadPoller
from recsys.errors import RecsysError
from recsys.ranking.model import Runtime

# a child of KServe's logger: it shares the handler and format KServe configures
log = logging.getLogger("kserve.recsys")


class RankerModel(kserve.Model):
    """Scores ``features`` with the bundle's ranker; ``reload()`` swaps in the source's newest."""

    def __init__(
        self,
        name: str,
        source: ModelSource,
        runtime: Runtime = "onnx",
        *,
        scoring_threads: int = 4,
        poll_seconds: float = 0.0,
    ) -> None:
        super().__init__(name)
        self.source = source
        self.runtime: Runtime = runtime
        self.poll_seconds = poll_seconds
        self._served: ServedModel | None = None
        # scoring gets its own pool: a burst of reloads or other to_thread work never queues it
        self._executor = ThreadPoolExecutor(max_workers=scoring_threads, thread_name_prefix="recsys-score")
        self._reload_lock = threading.Lock()
        self._poller = ReloadPoller(name, poll_seconds, lambda: self.reload_sync(only_if_changed=True))

    # -- loading ----------------------------------------------------------------------------

    @property
    def served(self) -> ServedModel:
        if self._served is None:
            raise ReloadFailed(f"model {self.name}: no bundle loaded")
        return self._served

    def load(self) -> bool:
        """Blocking first load (before the server starts); errors propagate to the caller."""
        self._swap(self.source.load(self.runtime))
        self.ready = True
        return self.ready

    def reload_sync(self, *, only_if_changed: bool = False) -> str:
        """Load the source again and swap; returns swapped | unchanged. Serialized by a lock."""
        with self._reload_lock:
            current = self._served
            try:
                if (
                    only_if_changed
                    and current is not None
                    and self.source.fingerprint() == current.fingerprint
                ):
                    metrics.RELOADS.labels(model=self.name, result="unchanged").inc()
                    return "unchanged"
                new = self.source.load(self.runtime)
            except Exception as e:
                metrics.RELOADS.labels(model=self.name, result="failed").inc()
                still = f"still serving {current.version}" if current else "nothing served"
                raise ReloadFailed(
                    f"model {self.name}: reload from {self.source.uri} failed ({still}): {e}"
                ) from e
            self._swap(new)
            metrics.RELOADS.labels(model=self.name, result="swapped").inc()
            return "swapped"

    async def reload(self) -> str:
        return await asyncio.to_thread(self.reload_sync)

    def _swap(self, new: ServedModel) -> None:
        old, self._served = self._served, new  # one reference assignment: atomic for readers
        metrics.set_served(self.name, new.version, new.ranker.runtime, new.schema_hash)
        log.info(
            "model %s: serving bundle %s (%s, %d features, schema %s)%s",
            self.name,
            new.version,
            new.ranker.runtime,
            new.n_features,
            new.schema_hash,
            f", replacing {old.version}" if old else "",
        )

    # -- polling ----------------------------------------------------------------------------

    def start(self) -> None:
        """Called by ModelServer at registration; starts the poller when asked for one."""
        self.ready = self._served is not None
        self._poller.start()

    def stop(self) -> None:
        self._poller.stop()
        self.ready = False

    # -- serving ----------------------------------------------------------------------------

    def get_input_types(self) -> list[dict[str, Any]]:
        return protocol.input_types(self.served.n_features)

    def get_output_types(self) -> list[dict[str, Any]]:
        return protocol.output_types()

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        served = self.served  # the snapshot this request uses from start to end
        status = "error"
        try:
            if not isinstance(payload, InferRequest):
                raise RequestError(
                    f"model {self.name} speaks the v2 protocol: POST /v2/models/{self.name}/infer"
                )
            check_request(payload)  # the v2 contract both servers share (inference/contract.py)
            protocol.check_request(payload, served)
            X = protocol.features(payload, served.n_features)
            loop = asyncio.get_running_loop()
            scores = await loop.run_in_executor(self._executor, served.score, X)
            metrics.ROWS_SCORED.labels(model=self.name).inc(len(X))
            status = "ok"
            return protocol.response(payload, self.name, served, scores)
        except SchemaMismatch:
            status = "schema_mismatch"
            metrics.SCHEMA_MISMATCHES.labels(model=self.name).inc()
            raise
        except RecsysError as e:
            status = "invalid_input" if e.status < 500 else "error"
            raise
        finally:
            metrics.PREDICTIONS.labels(model=self.name, status=status).inc()


class ReloadingRepositoryExtension(ModelRepositoryExtension):
    """``POST /v2/repository/models/{name}/load`` reloads the model's source and swaps it in.

    KServe's default repository cannot load anything and reports every failure as "not ready"
    (503); here an unknown name is a 404 and a failed reload says what is still being served.
    An unloaded model can be loaded again: its object is remembered.
    """

    def __init__(self, model_registry: ModelRepository, models: list[Any]) -> None:
        """``models``: kserve Models with an async ``reload()`` (the predictor's and the transformer's)."""
        super().__init__(model_registry=model_registry)
        self._known = {m.name: m for m in models}

    async def load(self, model_name: str) -> None:
        model = self._known.get(model_name)
        if model is None:
            raise ModelNotFound(model_name)
        await model.reload()
        if self._model_registry.get_model(model_name) is None:
            self._model_registry.update(model)
            model.start()


async def recsys_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """Every RecsysError answers with its own status and KServe's ``{"error": ...}`` body."""
    status = exc.status if isinstance(exc, RecsysError) else 500
    if status >= 500:
        log.error("request failed: %s", exc, exc_info=exc)
    return JSONResponse(status_code=status, content={"error": str(exc)})
