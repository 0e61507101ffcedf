"""The predictor's v2 (Open Inference Protocol) contract: which tensors come in, which go out.

Request: ``features`` FP32 [n, d] (d = the ranker's feature count), optionally the feature
schema the caller built them for, as the request parameter ``schema_hash`` or a BYTES [1] input
``schema_hash``. Columns that are the same on every row (the user's, which lead the ranker's
order) may be sent once instead: ``shared_features`` FP32 [1, s] are the first s columns of
every row and ``features`` is then [n, d - s]. The transformer sends 37 of 98 columns that way,
118 KB -> 73 KB per 300-row request.

Response: ``scores`` FP32 [n] and ``model_version`` BYTES [1]; the version is also the
response's ``model_version`` and, with the schema hash and runtime, its ``parameters``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse, to_http_parameters

from inference.errors import RequestError, SchemaMismatch
from inference.model_source import ServedModel

FEATURES, SHARED, SCHEMA_HASH = "features", "shared_features", "schema_hash"
SCORES, MODEL_VERSION = "scores", "model_version"
OUTPUTS = (SCORES, MODEL_VERSION)


def input_types(n_features: int) -> list[dict[str, Any]]:
    return [
        {"name": FEATURES, "datatype": "FP32", "shape": [-1, n_features]},
        {"name": SHARED, "datatype": "FP32", "shape": [1, -1]},
        {"name": SCHEMA_HASH, "datatype": "BYTES", "shape": [1]},
    ]


def output_types() -> list[dict[str, Any]]:
    return [
        {"name": SCORES, "datatype": "FP32", "shape": [-1]},
        {"name": MODEL_VERSION, "datatype": "BYTES", "shape": [1]},
    ]


def _matrix(request: InferRequest, name: str, width: int | None) -> np.ndarray | None:
    """Input ``name`` as FP32 [rows, width] (any width when None); None when it is absent."""
    tensor = request.get_input_by_name(name)
    if tensor is None:
        return None
    if tensor.datatype != "FP32":
        raise RequestError(f"input tensor '{name}': datatype {tensor.datatype}, expected FP32")
    shape = [int(s) for s in tensor.shape]
    if len(shape) != 2 or shape[0] < 0 or (width is not None and shape[1] != width):
        wanted = f"[n, {width}]" if width is not None else "[1, s]"
        raise RequestError(f"input tensor '{name}': shape {shape} does not match the model's {wanted}")
    try:
        X = tensor.as_numpy()
    except ValueError as e:
        # the declared shape and the data disagree (JSON list or binary size)
        raise RequestError(f"input tensor '{name}': data does not fill shape {shape}: {e}") from e
    return X.astype(np.float32, copy=False).reshape(shape)


def features(request: InferRequest, n_features: int) -> np.ndarray:
    """The [n, d] matrix to score, with ``shared_features`` (if sent) as every row's first
    columns; a 400 naming the tensor and both shapes when it does not fit."""
    shared = _matrix(request, SHARED, None)
    if shared is not None and (shared.shape[0] != 1 or shared.shape[1] > n_features):
        raise RequestError(
            f"input tensor '{SHARED}': shape {list(shared.shape)}, expected [1, s] with s <= {n_features}"
        )
    s = 0 if shared is None else shared.shape[1]
    rows = _matrix(request, FEATURES, n_features - s)
    if rows is None:
        names = [t.name for t in request.inputs]
        raise RequestError(f"input tensor '{FEATURES}' is missing (got {names})")
    if s == 0:
        return rows
    X = np.empty((rows.shape[0], n_features), dtype=np.float32)
    X[:, :s] = shared
    X[:, s:] = rows
    return X


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def claimed_schema_hashes(request: InferRequest) -> list[str]:
    """Every schema hash the request states (parameter and/or input); empty when it states none."""
    claimed: list[str] = []
    params: Mapping[str, Any] = request.parameters or {}
    if not isinstance(params, dict):
        params = to_http_parameters(params)  # gRPC: InferParameter messages
    if params.get(SCHEMA_HASH) is not None:
        claimed.append(_text(params[SCHEMA_HASH]))
    tensor = request.get_input_by_name(SCHEMA_HASH)
    if tensor is not None:
        if tensor.datatype != "BYTES":
            raise RequestError(f"input tensor '{SCHEMA_HASH}': datatype {tensor.datatype}, expected BYTES")
        try:
            values = tensor.as_numpy().reshape(-1)
        except ValueError as e:
            raise RequestError(f"input tensor '{SCHEMA_HASH}': {e}") from e
        if len(values) != 1:
            raise RequestError(f"input tensor '{SCHEMA_HASH}': shape {tensor.shape}, expected [1]")
        claimed.append(_text(values[0]))
    return claimed


def check_request(request: InferRequest, served: ServedModel) -> None:
    """Schema and requested outputs, before any scoring."""
    for claimed in claimed_schema_hashes(request):
        if claimed != served.schema_hash:
            raise SchemaMismatch(
                f"schema mismatch: the request's {SCHEMA_HASH} {claimed!r} is not the served bundle's "
                f"{served.schema_hash!r} (bundle {served.version}); rebuild the features for this bundle"
            )
    for output in request.request_outputs or ():
        if output.name not in OUTPUTS:
            raise RequestError(f"requested output '{output.name}' does not exist (outputs: {list(OUTPUTS)})")


def response(
    request: InferRequest, model_name: str, served: ServedModel, scores: np.ndarray
) -> InferResponse:
    version = served.version
    if request.from_grpc:
        # KServe's gRPC encoder tests `data` for truth, which a numpy array refuses: lists there
        score_data: Any = scores.tolist()
        version_data: Any = [version]
    else:
        # the REST encoder takes arrays (empty ones too) and writes them as JSON or binary
        score_data, version_data = scores, np.array([version.encode()], dtype=np.object_)
    return InferResponse(
        response_id=request.id or str(uuid.uuid4()),  # the REST response model requires an id
        model_name=model_name,
        model_version=version,
        infer_outputs=[
            InferOutput(SCORES, [len(scores)], "FP32", data=score_data),
            InferOutput(MODEL_VERSION, [1], "BYTES", data=version_data),
        ],
        parameters={
            MODEL_VERSION: version,
            SCHEMA_HASH: served.schema_hash,
            "runtime": served.ranker.runtime,
        },
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )
