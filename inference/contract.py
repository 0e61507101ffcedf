"""The v2 input contract of both servers, checked in one place before a model sees a request.

Two entry points, one rule set:

* ``check_header(header)``: the JSON part of a REST request (a JSON body, or the JSON header of a
  binary one), before anything is built from it: an object; ``id`` a string; ``parameters`` an
  object (also per tensor and per requested output); ``inputs`` an array of objects with a
  ``name``, a ``datatype`` spelt as the protocol does (``BYTES``, not ``bytes``) and a ``shape``
  of non-negative integers; input names unique; ``data`` an array (nested arrays allowed) of
  exactly ``prod(shape)`` values of the datatype's own JSON type (no coercion: a null, an object
  or a float as a BYTES or INT value is refused, not served as ``'None'`` or ``1``), or a binary
  part of the size the shape needs.
* ``check_request(request)``: the structural rules on the decoded request, for gRPC (whose wire
  format already types the values) and as the models' own guard.

Every violation is KServe's ``InvalidInput``: a 400 naming the tensor and the problem, counted
like the other rejected requests (inference/bad_requests.py). The models then check their own
inputs' names, datatypes and shapes (inference/transformer.py, inference/protocol.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest

# datatype -> bytes per element in a binary part (None: length-prefixed BYTES)
DATATYPES: dict[str, int | None] = {
    "BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "INT8": 1, "INT16": 2, "INT32": 4,
    "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8, "BYTES": None,
}  # fmt: skip
MAX_INPUTS = 64
MAX_DIMS = 8


def _fail(message: str) -> None:
    raise InvalidInput(message)


def _object(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, Mapping):
        _fail(f"{where}: must be an object, got {type(value).__name__}")


def _shape(shape: Any, where: str) -> list[int]:
    if not isinstance(shape, list | tuple) or not shape or len(shape) > MAX_DIMS:
        _fail(f"{where}: shape must be a list of 1 to {MAX_DIMS} dimensions, got {shape!r:.80}")
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            _fail(f"{where}: shape {list(shape)!r:.80}: every dimension must be an integer >= 0")
    return [int(d) for d in shape]


def _flat(data: Any, where: str, limit: int) -> list[Any]:
    """The values of a (nested) JSON array, stopping once there are more than ``limit``."""
    if not isinstance(data, list):
        _fail(f"{where}: data must be an array, got {type(data).__name__}")
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            out.append(value)
            if len(out) > limit:
                return out
        else:
            stack.pop()
    return out


def _value_ok(datatype: str, value: Any) -> bool:
    if datatype == "BYTES":
        return isinstance(value, str | bytes)
    if datatype == "BOOL":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if datatype.startswith(("INT", "UINT")):
        return isinstance(value, int) and (value >= 0 or datatype.startswith("INT"))
    return isinstance(value, int | float) and math.isfinite(value)  # FP: no NaN or infinity in JSON


def _check_values(datatype: str, values: list[Any], where: str) -> None:
    for value in values:
        if not _value_ok(datatype, value):
            _fail(f"{where}: {value!r:.40} is not a {datatype} value")


def _tensor(spec: Any, n: int, names: set[str]) -> None:
    if not isinstance(spec, Mapping):
        _fail(f"inputs[{n}]: must be an object with name, shape, datatype and data")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        _fail(f"inputs[{n}]: name must be a non-empty string")
    where = f"input tensor '{name}'"
    if name in names:
        _fail(f"{where}: given twice (input names must be unique)")
    names.add(name)
    datatype = spec.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        _fail(f"{where}: datatype {datatype!r:.40} is not one of {', '.join(DATATYPES)}")
    count = math.prod(_shape(spec.get("shape"), where))
    _object(spec.get("parameters"), f"{where}: parameters")
    data = spec.get("data")
    if data is None:
        size = (spec.get("parameters") or {}).get("binary_data_size")
        if size is None:
            _fail(f"{where}: no data and no binary_data_size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            _fail(f"{where}: binary_data_size {size!r:.40} must be an integer >= 0")
        width = DATATYPES[datatype]
        if width is not None and size != count * width:
            _fail(f"{where}: binary_data_size {size} does not hold shape {list(spec['shape'])} of {datatype}")
        return
    values = _flat(data, where, count)
    if len(values) != count:
        more = "more" if len(values) > count else str(len(values))
        _fail(f"{where}: shape {list(spec['shape'])} needs {count} values, the data holds {more}")
    _check_values(datatype, values, where)


def check_header(header: Any) -> None:
    """The JSON part of a REST v2 request; InvalidInput naming the first problem."""
    if not isinstance(header, Mapping):
        _fail(f"the request must be a JSON object with 'inputs', got {type(header).__name__}")
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        _fail(f"id: must be a string, got {type(request_id).__name__}")
    _object(header.get("parameters"), "parameters")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        _fail(f"inputs: must be a non-empty array of input tensors, got {inputs!r:.40}")
    if len(inputs) > MAX_INPUTS:
        _fail(f"inputs: {len(inputs)} tensors, at most {MAX_INPUTS}")
    names: set[str] = set()
    for n, spec in enumerate(inputs):
        _tensor(spec, n, names)
    outputs = header.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            _fail(f"outputs: must be an array, got {type(outputs).__name__}")
        for n, out in enumerate(outputs):
            if not isinstance(out, Mapping) or not isinstance(out.get("name"), str):
                _fail(f"outputs[{n}]: must be an object with a name")
            _object(out.get("parameters"), f"output '{out['name']}': parameters")


def check_request(request: InferRequest) -> None:
    """The decoded request: unique names, datatypes, shapes and how many values the data holds.
    (A REST request's values were checked by ``check_header``; gRPC's are typed by the wire.)"""
    if len(request.inputs) > MAX_INPUTS:
        _fail(f"inputs: {len(request.inputs)} tensors, at most {MAX_INPUTS}")
    if not request.inputs:
        _fail("inputs: must be a non-empty array of input tensors")
    names: set[str] = set()
    for tensor in request.inputs:
        where = f"input tensor '{tensor.name}'"
        if tensor.name in names:
            _fail(f"{where}: given twice (input names must be unique)")
        names.add(tensor.name)
        if not isinstance(tensor.datatype, str) or tensor.datatype not in DATATYPES:
            _fail(f"{where}: datatype {tensor.datatype!r:.40} is not one of {', '.join(DATATYPES)}")
        count = math.prod(_shape(list(tensor.shape), where))
        raw = getattr(tensor, "_raw_data", None)  # a binary part (REST) or raw contents (gRPC)
        if raw is not None:
            width = DATATYPES[tensor.datatype]
            if width is not None and len(raw) != count * width:
                _fail(
                    f"{where}: {len(raw)} raw bytes do not hold shape {list(tensor.shape)} "
                    f"of {tensor.datatype}"
                )
        elif isinstance(tensor.data, list):  # gRPC contents, JSON values
            values = _flat(tensor.data, where, count)
            if len(values) != count:
                _fail(
                    f"{where}: shape {list(tensor.shape)} needs {count} values, the data holds {len(values)}"
                )
