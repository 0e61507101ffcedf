"""KServe's data plane with a few costs taken out, used by both servers (``inference/server.py``).

**Binary request tensors stay byte buffers.** KServe 0.21 turns every binary request tensor
into a Python list while decoding (``InferRequest.from_bytes`` calls ``set_data_from_numpy(...,
binary_data=False)``), so that a transformer could re-send it as JSON. A predictor only reads
tensors with ``as_numpy``, which reads the raw bytes as they are. Measured on 300 x 96 FP32
through tritonclient: the decode was 14 ms of a 21 ms request. JSON requests take KServe's
path unchanged.

**JSON responses are written once, by orjson.** KServe's v2 endpoint validates the response
dict into its pydantic ``InferenceResponse`` and FastAPI re-encodes that (``jsonable_encoder``,
then ``json.dumps``): 4 % of a transformer worker's CPU under load. The endpoint sends bytes
as they are, so ``encode`` returns the JSON bytes with their ``Content-Type`` and
``Content-Length``. KServe drops the lower-case spellings of those two headers from encode's
result (it means to drop stale ones), not the capitalised ones: tests/integration/test_transformer.py
checks the header, re-check it on a KServe upgrade. When no output goes binary, the dict is
built by ``json_outputs`` instead of ``InferResponse.to_rest``, which walks every BYTES element
with ``np.nditer`` (same JSON, checked in tests/unit/test_fast_infer.py). Cloud events and
binary outputs take KServe's path unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.protocol.dataplane import DataPlane, has_binary_headers
from kserve.protocol.infer_type import (
    InferInput,
    InferRequest,
    InferResponse,
    RequestedOutput,
    to_http_parameters,
)

from inference.contract import check_header


def raw_infer_request(body: bytes, json_length: int, model_name: str) -> InferRequest:
    """``InferRequest.from_bytes`` without converting binary tensors to lists."""
    if not 0 < json_length <= len(body):
        raise InvalidInput(f"{INFERENCE_CONTENT_LENGTH_HEADER} {json_length}: body has {len(body)} bytes")
    try:
        header: dict[str, Any] = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the request is not JSON: {e}") from e
    check_header(header)  # the v2 contract: types, shapes, sizes, names (inference/contract.py)
    inputs, offset = [], json_length
    for spec in header["inputs"]:
        tensor = InferInput(spec["name"], spec["shape"], spec["datatype"], parameters=spec.get("parameters"))
        size = (spec.get("parameters") or {}).get("binary_data_size")
        if spec.get("data") is not None:
            tensor.data = spec["data"]
        elif isinstance(size, int) and 0 <= size <= len(body) - offset:
            # the attribute KServe's own decoder fills; as_numpy() reads it with np.frombuffer
            tensor._raw_data = body[offset : offset + size]
            offset += size
        else:
            raise InvalidInput(
                f"input '{tensor.name}': no 'data' and no valid binary_data_size ({size!r}) "
                f"within the {len(body) - offset} bytes left"
            )
        inputs.append(tensor)
    outputs = [RequestedOutput(o["name"], o.get("parameters")) for o in header.get("outputs") or ()]
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=header.get("id"),
        parameters=header.get("parameters"),
        request_outputs=outputs or None,
    )


def json_outputs(response: InferResponse) -> dict[str, Any] | None:
    """``response.to_rest()`` when every output is sent as JSON; None for anything else
    (binary outputs, FP16, an output or its data missing), which KServe's path handles and
    reports."""
    requested = response._requested_outputs
    if not requested and response._use_binary_outputs:
        return None
    outputs = []
    for spec in requested or response.outputs:
        out = response.get_output_by_name(spec.name) if requested else spec
        if out is None or (requested and spec.binary_data) or out.datatype == "FP16":
            return None
        data = out.data
        if isinstance(data, np.ndarray):
            values = data.reshape(-1).tolist()
            data = (
                [v.decode() if isinstance(v, bytes) else str(v) for v in values]
                if out.datatype == "BYTES"
                else values
            )
        else:  # lists (gRPC-style data), raw bytes: KServe's own conversion
            return None
        entry: dict[str, Any] = {"name": out.name, "shape": out.shape, "datatype": out.datatype}
        if out.parameters:
            parameters = {k: v for k, v in dict(out.parameters).items() if k != "binary_data_size"}
            if parameters:
                entry["parameters"] = to_http_parameters(parameters)
        entry["data"] = data
        outputs.append(entry)
    answer = {"id": response.id, "model_name": response.model_name, "model_version": response.model_version,
              "outputs": outputs}  # fmt: skip
    if response.parameters:
        answer["parameters"] = to_http_parameters(response.parameters)
    return answer


class V2DataPlane(DataPlane):
    async def ready(self) -> bool:
        """Ready while the server serves a model and every model it serves is ready: after an
        ``unload`` it is not (KServe's own answer stays True with no model at all, so a pod whose
        model was unloaded stayed in rotation)."""
        models = list(self.model_registry.get_models().values())
        return bool(models) and all(getattr(m, "ready", False) for m in models) and await super().ready()

    def decode_inference_request(self, body: Any, headers: dict[str, str], model_name: str) -> InferRequest:
        json_length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER) if headers else None
        if not isinstance(body, bytes) or json_length is None:
            return super().decode_inference_request(body, headers, model_name)
        try:
            length = int(json_length)
        except ValueError as e:
            raise InvalidInput(f"{INFERENCE_CONTENT_LENGTH_HEADER}: {json_length!r} is not a number") from e
        return raw_infer_request(body, length, model_name)

    def encode(
        self, model_name: str, response: Any, headers: dict[str, str], req_attributes: dict[str, Any]
    ) -> tuple[Any, dict[str, str]]:
        v2 = isinstance(response, InferResponse)
        cloudevent = headers and (
            has_binary_headers(headers) or headers.get("content-type", "") == "application/cloudevents+json"
        )
        plain = json_outputs(response) if v2 and not cloudevent else None
        if plain is not None:
            body = orjson.dumps(plain, option=orjson.OPT_SERIALIZE_NUMPY)
            return body, {"Content-Type": "application/json", "Content-Length": str(len(body))}
        body, response_headers = super().encode(model_name, response, headers, req_attributes)
        if v2 and isinstance(body, dict) and "content-type" not in response_headers:
            body = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
            response_headers["Content-Type"] = "application/json"
            response_headers["Content-Length"] = str(len(body))
        return body, response_headers
