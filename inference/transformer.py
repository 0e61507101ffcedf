"""The KServe transformer: a recommendation request in, k ranked items out (see docs/SERVING.md).

``RecommenderModel.predict`` parses and validates the v2 request (400 naming the field, never
500), assigns the experiment variant, runs the chain (inference/chain.py: it degrades instead
of failing), answers, and queues one exposure record. ``GET /recommend`` is the same for
callers without a v2 client.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kserve
import numpy as np
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse

from inference import transformer_metrics as metrics
from inference.chain import Bundle, Chain, Request, Result
from inference.contract import check_request
from inference.errors import ReloadFailed, RequestError
from inference.experiments import Experiments, Variant
from inference.exposure_log import ExposureLog
from inference.polling import ReloadPoller

log = logging.getLogger("kserve.recsys")
MAX_K, MAX_EXCLUDE, MAX_ID = 500, 1000, 256
OUTPUTS = ("item_ids", "scores", "channels", "experiment_variant", "degrade_level", "model_version")


def _values(tensor: InferInput, name: str) -> np.ndarray:
    try:
        return np.asarray(tensor.as_numpy()).reshape(-1)
    except Exception as e:  # noqa: BLE001 - any decoding failure is the caller's tensor
        raise RequestError(f"input tensor '{name}': cannot read its data as {tensor.datatype}: {e}") from e


def id_text(value: Any, name: str) -> str:
    if isinstance(value, bytes | np.bytes_):
        try:
            value = bytes(value).decode()
        except UnicodeDecodeError as e:
            raise RequestError(f"input tensor '{name}': not UTF-8") from e
    text = str(value)
    if not text or len(text) > MAX_ID:
        raise RequestError(f"input tensor '{name}': ids must be 1..{MAX_ID} characters")
    return text


def _scalar(request: InferRequest, name: str, types: tuple[str, ...], required: bool) -> Any:
    tensor = request.get_input_by_name(name)
    if tensor is None:
        if required:
            raise RequestError(f"input tensor '{name}' is missing")
        return None
    if tensor.datatype not in types:
        raise RequestError(
            f"input tensor '{name}': datatype {tensor.datatype}, expected {' or '.join(types)}"
        )
    if list(tensor.shape) != [1]:
        raise RequestError(f"input tensor '{name}': shape {list(tensor.shape)}, expected [1]")
    values = _values(tensor, name)
    if len(values) != 1:
        raise RequestError(f"input tensor '{name}': shape {tensor.shape}, expected [1]")
    return values[0]


def parse_request(request: InferRequest) -> Request:
    check_request(request)  # the v2 contract both servers share (inference/contract.py)
    known = {"user_id", "k", "scene", "exclude_item_ids"}
    for tensor in request.inputs:
        if tensor.name not in known:
            raise RequestError(f"input tensor '{tensor.name}' is unknown (inputs: {sorted(known)})")
    user = _scalar(request, "user_id", ("BYTES", "INT64", "INT32"), required=True)
    user_id = id_text(user, "user_id")
    k = _scalar(request, "k", ("INT32", "INT64"), required=False)
    k = 10 if k is None else int(k)
    if not 1 <= k <= MAX_K:
        raise RequestError(f"input tensor 'k': {k} is out of range (1..{MAX_K})")
    scene = _scalar(request, "scene", ("BYTES",), required=False)
    exclude: set[str] = set()
    tensor = request.get_input_by_name("exclude_item_ids")
    if tensor is not None:
        if tensor.datatype != "BYTES":
            raise RequestError(f"input tensor 'exclude_item_ids': datatype {tensor.datatype}, expected BYTES")
        if len(tensor.shape) != 1:
            raise RequestError(f"input tensor 'exclude_item_ids': shape {list(tensor.shape)}, expected [m]")
        values = _values(tensor, "exclude_item_ids")
        if len(values) > MAX_EXCLUDE:
            raise RequestError(f"input tensor 'exclude_item_ids': more than {MAX_EXCLUDE} ids")
        exclude = {id_text(v, "exclude_item_ids") for v in values}
    for output in request.request_outputs or ():
        if output.name not in OUTPUTS:
            raise RequestError(f"requested output '{output.name}' does not exist (outputs: {list(OUTPUTS)})")
    return Request(user_id, k, None if scene is None else id_text(scene, "scene"), exclude)


def _bytes(values: list[str], grpc: bool) -> Any:
    return list(values) if grpc else np.array([v.encode() for v in values], dtype=np.object_)


class RecommenderModel(kserve.Model):
    """The transformer's model. ``bundle_source`` says which bundle should be served now (the
    registry's champion, or a fixed directory); ``reload`` swaps to it when it moved, from the
    repository load endpoint or a poller, while requests keep being answered."""

    def __init__(
        self,
        name: str,
        chain: Chain,
        experiments: Experiments,
        exposures: ExposureLog | None,
        bundle_source: Callable[[], Path] | None = None,
        poll_seconds: float = 0.0,
    ) -> None:
        super().__init__(name)
        self.chain, self.experiments, self.exposures = chain, experiments, exposures
        self.bundle_source, self.poll_seconds = bundle_source, poll_seconds
        self._reload_lock = threading.Lock()
        seconds = poll_seconds if bundle_source is not None else 0.0
        self._poller = ReloadPoller(name, seconds, lambda: self.reload_sync(only_if_changed=True))
        self.ready = True
        self.rebuild: tuple[Callable[..., Any], tuple[Any, ...]] | None = None

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """Pickled (into a KServe worker process) as the recipe that builds it there."""
        if self.rebuild is None:
            raise TypeError(f"model {self.name}: no rebuild recipe, it cannot move to another process")
        return self.rebuild

    def get_input_types(self) -> list[dict[str, Any]]:
        """The v2 metadata's inputs (``GET /v2/models/<name>``), as ``parse_request`` reads them."""
        return [
            {"name": "user_id", "datatype": "BYTES", "shape": [1]},
            {"name": "k", "datatype": "INT32", "shape": [1]},
            {"name": "scene", "datatype": "BYTES", "shape": [1]},
            {"name": "exclude_item_ids", "datatype": "BYTES", "shape": [-1]},
        ]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [
            {"name": "item_ids", "datatype": "BYTES", "shape": [-1]},
            {"name": "scores", "datatype": "FP32", "shape": [-1]},
            {"name": "channels", "datatype": "BYTES", "shape": [-1]},
            {"name": "experiment_variant", "datatype": "BYTES", "shape": [1]},
            {"name": "degrade_level", "datatype": "INT32", "shape": [1]},
            {"name": "model_version", "datatype": "BYTES", "shape": [1]},
        ]

    def load(self) -> bool:
        self.ready = True
        return True

    def start(self) -> None:
        """At registration, and again when the repository loads it after an unload."""
        if self.exposures is not None:
            self.exposures.reopen()
        self.ready = True
        self._poller.start()

    def stop(self) -> None:
        self._poller.stop()
        self.ready = False
        if self.exposures is not None:
            self.exposures.close()

    def reload_sync(self, *, only_if_changed: bool = False) -> str:
        """Serve the source's bundle: swapped | unchanged; ReloadFailed keeps the old one."""
        if self.bundle_source is None:
            return "unchanged"
        with self._reload_lock:
            current = self.chain.bundle
            try:
                path = self.bundle_source()
                if only_if_changed and path.resolve() == current.path.resolve():
                    metrics.RELOADS.labels(result="unchanged").inc()
                    return "unchanged"
                bundle = self.chain.bind(Bundle(path))
            except Exception as e:
                metrics.RELOADS.labels(result="failed").inc()
                raise ReloadFailed(
                    f"model {self.name}: reload failed (still serving {current.version}): {e}"
                ) from e
            self.chain.swap(bundle)
            metrics.RELOADS.labels(result="swapped").inc()
            log.info("model %s: serving bundle %s, replacing %s", self.name, bundle.version, current.version)
            return "swapped"

    async def reload(self) -> str:
        return await asyncio.to_thread(self.reload_sync)

    async def recommend(self, req: Request, request_id: str) -> tuple[Result, Variant]:
        start = time.perf_counter()
        req.request_id = request_id
        variant = self.experiments.assign(req.user_id)
        result = await self.chain.recommend(req, variant)
        latency = time.perf_counter() - start
        metrics.child(metrics.LATENCY, variant.name).observe(latency)
        metrics.child(metrics.REQUESTS, "ok", variant.name).inc()
        metrics.child(metrics.EXPOSED_ITEMS, variant.name).inc(len(result.items))
        if self.exposures is not None:
            self.exposures.submit(
                {
                    "request_id": request_id,
                    "user_id": req.user_id,
                    "items": result.items,
                    "positions": list(range(len(result.items))),
                    "scores": [round(s, 6) for s in result.scores],
                    "channels": result.channels,
                    "experiment_variant": variant.name,
                    "degrade_level": result.degrade_level,
                    "model_version": result.model_version,
                    "scene": req.scene,
                    "latency_ms": round(latency * 1000, 3),
                    "ts": datetime.now(UTC).isoformat(),
                }
            )
        return result, variant

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        if not isinstance(payload, InferRequest):
            metrics.REQUESTS.labels(status="invalid_input", variant="").inc()
            raise RequestError(f"model {self.name} speaks the v2 protocol: POST /v2/models/{self.name}/infer")
        try:
            req = parse_request(payload)
        except RequestError:
            metrics.REQUESTS.labels(status="invalid_input", variant="").inc()
            raise
        request_id = payload.id or str(uuid.uuid4())
        result, variant = await self.recommend(req, request_id)
        grpc, n = payload.from_grpc, len(result.items)
        return InferResponse(
            response_id=request_id,
            model_name=self.name,
            model_version=result.model_version,
            infer_outputs=[
                InferOutput("item_ids", [n], "BYTES", data=_bytes(result.items, grpc)),
                InferOutput(
                    "scores", [n], "FP32", data=result.scores if grpc else np.array(result.scores, np.float32)
                ),
                InferOutput("channels", [n], "BYTES", data=_bytes(result.channels, grpc)),
                InferOutput("experiment_variant", [1], "BYTES", data=_bytes([variant.name], grpc)),
                InferOutput(
                    "degrade_level",
                    [1],
                    "INT32",
                    data=[result.degrade_level] if grpc else np.array([result.degrade_level], np.int32),
                ),  # fmt: skip
                InferOutput("model_version", [1], "BYTES", data=_bytes([result.model_version], grpc)),
            ],
            parameters={
                "experiment_variant": variant.name,
                "degrade_level": result.degrade_level,
                "model_version": result.model_version,
            },
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )
