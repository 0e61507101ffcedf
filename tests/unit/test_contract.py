"""The v2 input contract (inference/contract.py): every body the SRE probe found answered 500 or
accepted although wrong is a 400 naming the field; well-formed requests pass untouched."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from inference.contract import check_header, check_request
from inference.dataplane import raw_infer_request

USER = {"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["u1"]}


def body(**change: Any) -> dict[str, Any]:
    return {"inputs": [dict(USER)], **change}


def tensor(**change: Any) -> dict[str, Any]:
    return body(inputs=[{**USER, **change}])


GOOD = [
    body(),
    body(id="r-1", parameters={"schema_hash": "x"}),
    body(inputs=[USER, {"name": "k", "shape": [1], "datatype": "INT32", "data": [5]}]),
    body(inputs=[{"name": "features", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2.5], [0, -1e3]]}]),
    body(inputs=[{"name": "x", "shape": [0], "datatype": "BYTES", "data": []}]),
    body(outputs=[{"name": "item_ids", "parameters": {"binary_data": False}}]),
    tensor(parameters={"content_type": "str"}),
]

BAD = [
    ({"inputs": None}, "inputs: must be a non-empty array"),
    ({"inputs": []}, "inputs: must be a non-empty array"),
    ({"inputs": {"name": "user_id"}}, "inputs: must be a non-empty array"),
    ([USER], "must be a JSON object"),
    (body(parameters="x"), "parameters: must be an object"),
    (body(parameters=["a"]), "parameters: must be an object"),
    (tensor(parameters="x"), "input tensor 'user_id': parameters: must be an object"),
    (body(id=7), "id: must be a string"),
    (body(inputs=[USER, USER]), "input tensor 'user_id': given twice"),
    (tensor(data=[None]), "None is not a BYTES value"),
    (tensor(data=[{"a": 1}]), "is not a BYTES value"),
    (tensor(datatype="INT32", data=[1.9]), "1.9 is not a INT32 value"),
    (tensor(datatype="INT32", data=[True]), "True is not a INT32 value"),
    (tensor(datatype="INT64", data=["5"]), "'5' is not a INT64 value"),
    (tensor(data="u1"), "data must be an array"),
    (tensor(shape=[1, 1]), None),  # fine here: one value; the transformer wants [1] (its own check)
    (tensor(shape=[-1]), "every dimension must be an integer >= 0"),
    (tensor(shape=[]), "shape must be a list of 1 to 8 dimensions"),
    (tensor(shape=[2]), "shape [2] needs 2 values, the data holds 1"),
    (tensor(datatype="bytes"), "datatype 'bytes' is not one of"),
    (tensor(name=""), "name must be a non-empty string"),
    (tensor(data=None), "no data and no binary_data_size"),
    (tensor(datatype="FP32", data=[float("nan")]), "is not a FP32 value"),
    (body(outputs=[{"name": "x", "parameters": "y"}]), "output 'x': parameters: must be an object"),
    (body(outputs="scores"), "outputs: must be an array"),
    (body(inputs=[{**USER, "name": f"t{n}"} for n in range(65)]), "at most 64"),
]


@pytest.mark.parametrize("header", GOOD)
def test_well_formed_requests_pass(header: dict[str, Any]) -> None:
    check_header(header)
    raw_infer_request(json.dumps(header).encode(), len(json.dumps(header)), "m")


@pytest.mark.parametrize(("header", "message"), BAD, ids=[m or "ok" for _, m in BAD])
def test_bad_requests_are_invalid_input_naming_the_field(header: Any, message: str | None) -> None:
    text = json.dumps(header).encode()
    if message is None:
        raw_infer_request(text, len(text), "m")
        return
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_header(header)
    with pytest.raises(InvalidInput):  # and so through the decoder both servers use
        raw_infer_request(text, len(text), "m")


def test_binary_parts_must_be_the_size_the_shape_needs() -> None:
    x = np.arange(6, dtype=np.float32)
    for size, ok in ((24, True), (20, False), (-1, False), ("24", False)):
        spec = {
            "name": "features",
            "shape": [2, 3],
            "datatype": "FP32",
            "parameters": {"binary_data_size": size},
        }
        head = json.dumps({"inputs": [spec]}).encode()
        if ok:
            request = raw_infer_request(head + x.tobytes(), len(head), "m")
            np.testing.assert_array_equal(request.inputs[0].as_numpy(), x.reshape(2, 3))
        else:
            with pytest.raises(InvalidInput, match="binary_data_size"):
                raw_infer_request(head + x.tobytes(), len(head), "m")


def test_decoded_requests_are_checked_too() -> None:
    """gRPC requests come typed by the wire; names, datatypes and shapes are still checked."""
    twice = InferRequest("m", [InferInput("a", [1], "BYTES", ["x"]), InferInput("a", [1], "BYTES", ["y"])])
    with pytest.raises(InvalidInput, match="given twice"):
        check_request(twice)
    short = InferRequest("m", [InferInput("a", [3], "INT64", [1, 2])])
    with pytest.raises(InvalidInput, match="needs 3 values"):
        check_request(short)
    with pytest.raises(InvalidInput, match="non-empty"):
        check_request(InferRequest("m", []))
    check_request(InferRequest("m", [InferInput("a", [2], "INT64", [1, 2])]))
