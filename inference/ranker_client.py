"""The transformer's client of the predictor: v2 REST with binary tensors both ways (httpx).

Request: a JSON header (``features`` FP32 [n, d] with ``binary_data_size``, ``scores`` asked as
binary) followed by the raw little-endian float32 rows; ``Inference-Header-Content-Length``
says where the header ends, the extension tritonclient and the predictor speak.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import orjson

HEADER = "Inference-Header-Content-Length"


class PredictorError(Exception):
    """The predictor did not answer with scores (down, timeout, 4xx/5xx, bad body)."""


class RankerClient:
    def __init__(self, host: str, model_name: str = "recsys", timeout_s: float = 0.5) -> None:
        base = host if "://" in host else f"http://{host}"
        self.url = f"{base.rstrip('/')}/v2/models/{model_name}/infer"
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_keepalive_connections=32))

    async def score(self, X: np.ndarray, schema_hash: str | None = None) -> tuple[np.ndarray, str]:
        """(scores float32 [n], the model version that scored them); PredictorError otherwise."""
        data = np.ascontiguousarray(X, dtype="<f4").tobytes()
        header: dict[str, Any] = {
            "inputs": [
                {
                    "name": "features",
                    "shape": list(X.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(data)},
                }
            ],
            "outputs": [{"name": "scores", "parameters": {"binary_data": True}}],
        }
        if schema_hash:
            header["parameters"] = {"schema_hash": schema_hash}
        head = orjson.dumps(header)
        try:
            resp = await self._client.post(
                self.url,
                content=head + data,
                headers={HEADER: str(len(head)), "Content-Type": "application/octet-stream"},
            )
        except httpx.HTTPError as e:
            raise PredictorError(f"predictor {self.url}: {type(e).__name__}: {e}") from e
        if resp.status_code != 200:
            raise PredictorError(f"predictor {self.url}: HTTP {resp.status_code}: {resp.text[:200]}")
        return parse_scores(resp.content, resp.headers.get(HEADER), len(X))

    async def close(self) -> None:
        await self._client.aclose()


def parse_scores(body: bytes, header_length: str | None, n: int) -> tuple[np.ndarray, str]:
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
    except (ValueError, KeyError, StopIteration, TypeError) as e:
        raise PredictorError(f"predictor: unreadable response: {e!r}") from e
    if scores.shape != (n,):
        raise PredictorError(f"predictor: {scores.shape[0]} scores for {n} rows")
    return scores.astype(np.float32), version
