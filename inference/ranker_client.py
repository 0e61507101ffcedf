"""The transformer's client of the predictor: v2 REST with binary tensors both ways.

Request: a JSON header (``features`` FP32 [n, d] with ``binary_data_size``, ``scores`` asked as
binary) followed by the raw little-endian float32 rows; ``Inference-Header-Content-Length``
says where the header ends, the extension tritonclient and the predictor speak. The leading
columns that are the same on every row (the user's) go once, as ``shared_features`` [1, s]
(inference/protocol.py), when the predictor's metadata lists that input: asked once per client,
and again after a 4xx, so that a predictor rolled back to an older version still gets the
whole matrix. The HTTP client is ``inference/http_pool.py``: at a few hundred requests per
second, general clients' per-request machinery was a large share of the transformer's CPU
(httpx 13 % in a py-spy profile; aiohttp twice the pool's CPU per call).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson

from inference.http_pool import HttpPool, UpstreamError
from recsys.resilience import CircuitBreaker

HEADER = "Inference-Header-Content-Length"


class PredictorError(Exception):
    """The predictor did not answer with scores (down, timeout, 4xx/5xx, bad body)."""

    reason = "predictor"


class PredictorTimeout(PredictorError):
    reason = "predictor_timeout"


class CircuitOpen(PredictorError):
    reason = "predictor_circuit_open"


class RejectedRequest(PredictorError):
    """A 4xx: e.g. a schema mismatch after a one-sided reload."""

    reason = "predictor_rejected"


class RankerClient:
    """One predictor endpoint. Connection failures, timeouts and 5xx count against the circuit
    breaker (a 4xx is the request's fault, not the predictor's); while it is open ``score``
    fails at once with CircuitOpen."""

    def __init__(
        self,
        host: str,
        model_name: str = "recsys",
        timeout_s: float = 0.5,
        breaker: CircuitBreaker | None = None,
        api_key: str | None = None,
    ) -> None:
        """``api_key``: sent as X-API-Key, for a predictor whose edge requires one."""
        self.auth = {"X-API-Key": api_key} if api_key else {}
        self.base = (host if "://" in host else f"http://{host}").rstrip("/")
        self.host = host
        self.metadata_path = f"{urlsplit(self.base).path}/v2/models/{model_name}"
        self.metadata_url = f"{self.base}/v2/models/{model_name}"
        self.url = f"{self.metadata_url}/infer"
        HttpPool(self.base)  # a URL it cannot use fails here, at start-up
        self._takes_shared: bool | None = None  # None: not asked yet
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker(host, failure_threshold=5, reset_timeout_s=2.0)
        self._pool: HttpPool | None = None  # its connections belong to one loop: made on first use
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> HttpPool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            self._pool, self._loop = HttpPool(self.base, limit=64), loop
        return self._pool

    async def score(
        self, X: np.ndarray, schema_hash: str | None = None, shared: int = 0, request_id: str = ""
    ) -> tuple[np.ndarray, str]:
        """(scores float32 [n], the model version that scored them); PredictorError otherwise.
        ``shared``: X's first columns that are the same on every row (sent once if possible).
        ``request_id``: the v2 request id, so that the predictor's answer (and log) carries the
        caller's id instead of one it makes up."""
        if not self.breaker.allow():
            raise CircuitOpen(f"predictor {self.url}: circuit open after repeated failures")
        try:
            if shared and (len(X) < 2 or not await self._predictor_takes_shared()):
                shared = 0
            result = await self._score(X, schema_hash, shared, request_id)
        except PredictorError as e:
            if not isinstance(e, RejectedRequest):
                self.breaker.record_failure()
            else:
                self._takes_shared = None  # e.g. a predictor rolled back: ask again
                self.breaker.record_success()
            raise
        except BaseException:  # cancelled by the request's deadline: no verdict on the predictor
            self.breaker.release()
            raise
        self.breaker.record_success()
        return result

    async def _predictor_takes_shared(self) -> bool:
        if self._takes_shared is None:
            try:
                async with asyncio.timeout(self.timeout_s):
                    answer = await self._client().request("GET", self.metadata_path, headers=self.auth)
                meta = orjson.loads(answer.body) if answer.status == 200 else {}
                self._takes_shared = any(i.get("name") == "shared_features" for i in meta.get("inputs", []))
            except (UpstreamError, TimeoutError, ValueError, AttributeError):
                return False  # the whole matrix works with any predictor; ask again next time
        return self._takes_shared

    async def _score(
        self, X: np.ndarray, schema_hash: str | None, shared: int, request_id: str
    ) -> tuple[np.ndarray, str]:
        tensors = [("shared_features", X[:1, :shared]), ("features", X[:, shared:])] if shared else [
            ("features", X)]  # fmt: skip
        inputs, chunks = [], []
        for name, values in tensors:
            data = np.ascontiguousarray(values, dtype="<f4").tobytes()
            inputs.append({"name": name, "shape": list(values.shape), "datatype": "FP32",
                           "parameters": {"binary_data_size": len(data)}})  # fmt: skip
            chunks.append(data)
        header: dict[str, Any] = {
            "inputs": inputs,
            "outputs": [{"name": "scores", "parameters": {"binary_data": True}}],
        }
        if request_id:
            header["id"] = request_id
        if schema_hash:
            header["parameters"] = {"schema_hash": schema_hash}
        head = orjson.dumps(header)
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await self._client().request(
                    "POST", f"{self.metadata_path}/infer", b"".join([head, *chunks]),
                    {HEADER: str(len(head)), "Content-Type": "application/octet-stream", **self.auth},
                )  # fmt: skip
        except TimeoutError as e:
            raise PredictorTimeout(f"predictor {self.url}: no answer within {self.timeout_s} s") from e
        except UpstreamError as e:
            raise PredictorError(f"predictor {self.url}: {e}") from e
        status, body, header_length = answer.status, answer.body, answer.headers.get(HEADER.lower())
        if 400 <= status < 500:
            raise RejectedRequest(f"predictor {self.url}: HTTP {status}: {body[:200]!r}")
        if status != 200:
            raise PredictorError(f"predictor {self.url}: HTTP {status}: {body[:200]!r}")
        return parse_scores(body, header_length, len(X), request_id)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


def parse_scores(
    body: bytes, header_length: str | None, n: int, request_id: str = ""
) -> tuple[np.ndarray, str]:
    """The scores and model version of a v2 answer; an answer to another request (its id is not
    ``request_id``) is refused rather than used."""
    try:
        length = int(header_length) if header_length is not None else len(body)
        meta = orjson.loads(body[:length])
        out = next(o for o in meta["outputs"] if o["name"] == "scores")
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            scores = np.frombuffer(body[length : length + int(size)], dtype="<f4")
        else:
            scores = np.asarray(out["data"], dtype=np.float32)
        version = str(meta.get("model_version") or (meta.get("parameters") or {}).get("model_version", ""))
        answered = meta.get("id")
    except (ValueError, KeyError, StopIteration, TypeError, AttributeError) as e:
        raise PredictorError(f"predictor: unreadable response: {e!r}") from e
    if request_id and answered and answered != request_id:
        raise PredictorError(f"predictor: answer to request {answered!r} received for {request_id!r}")
    if scores.shape != (n,):
        raise PredictorError(f"predictor: {scores.shape[0]} scores for {n} rows")
    return scores.astype(np.float32), version
