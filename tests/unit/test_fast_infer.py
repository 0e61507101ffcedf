"""The v2 infer fast path answers exactly as KServe's FastAPI route does, and hands on the rest.

Two apps are built the way both servers build theirs (KServe's endpoints and exception handlers,
ours from inference/bad_requests.py, our data plane), one with ``InferFastPath`` in front; the
same requests go to both in process (httpx's ASGI transport: no sockets needed to compare
answers; the integration tests run the real servers, fast path included).
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import httpx
import kserve
import numpy as np
import pytest
from fastapi import FastAPI
from kserve.errors import InvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from inference import bad_requests, server
from inference.dataplane import V2DataPlane
from inference.fast_infer import InferFastPath

MODEL = "echo"


class Echo(kserve.Model):
    """Doubles ``x``; ``bad`` is the caller's error, ``boom`` a bug."""

    def __init__(self, name: str, ready: bool = True) -> None:
        super().__init__(name)
        self.ready = ready

    async def predict(self, payload: InferRequest, headers: Any = None, response_headers: Any = None) -> Any:
        tensor = payload.inputs[0]
        if tensor.name == "bad":
            raise InvalidInput("input 'bad': not accepted")
        if tensor.name == "boom":
            raise RuntimeError("a bug")
        out = InferOutput("y", tensor.shape, "FP32")
        binary = bool(
            payload.request_outputs and (payload.request_outputs[0].parameters or {}).get("binary_data")
        )
        out.set_data_from_numpy(payload.inputs[0].as_numpy().astype(np.float32) * 2, binary_data=binary)
        return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id)


def build(fast: bool, rejected: list[str | None]) -> FastAPI:
    registry = ModelRepository()
    registry.update(Echo(MODEL))
    registry.update(Echo("sleepy", ready=False))
    rest = SimpleNamespace(dataplane=V2DataPlane(model_registry=registry), model_repository_extension=None)
    app = FastAPI()
    if fast:
        app.add_middleware(InferFastPath, fastapi_app=app, dataplane=rest.dataplane)
    server._kserve_register_endpoints(rest, app)  # type: ignore[arg-type]
    bad_requests._hook["count"] = rejected.append
    bad_requests._add_exception_handlers(rest, app)  # type: ignore[arg-type]
    return app


def post(app: FastAPI, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(go())


def binary_body(x: np.ndarray, binary_output: bool) -> tuple[bytes, dict[str, str]]:
    header: dict[str, Any] = {
        "inputs": [
            {
                "name": "x",
                "shape": list(x.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": x.nbytes},
            }
        ],  # fmt: skip
        "outputs": [{"name": "y", "parameters": {"binary_data": binary_output}}],
    }
    head = json.dumps(header).encode()
    return head + x.tobytes(), {
        "inference-header-content-length": str(len(head)),
        "content-type": "application/octet-stream",
    }


def json_body(name: str = "x", **extra: Any) -> bytes:
    return json.dumps(
        {"id": "r1", "inputs": [{"name": name, "shape": [2], "datatype": "FP32", "data": [1.5, -2]}], **extra}
    ).encode()


JSON = {"content-type": "application/json"}
CASES: list[tuple[str, str, bytes, dict[str, str], int]] = [
    ("json", f"/v2/models/{MODEL}/infer", json_body(), JSON, 200),
    (
        "json as application/x+json",
        f"/v2/models/{MODEL}/infer",
        json_body(),
        {"content-type": "application/x+json"},
        200,
    ),
    (
        "binary in, binary out",
        f"/v2/models/{MODEL}/infer",
        *binary_body(np.arange(6, dtype=np.float32), True),
        200,
    ),
    ("binary in, json out", f"/v2/models/{MODEL}/infer", *binary_body(np.ones(3, np.float32), False), 200),
    ("model's bad input", f"/v2/models/{MODEL}/infer", json_body("bad"), JSON, 400),
    ("model's bug", f"/v2/models/{MODEL}/infer", json_body("boom"), JSON, 500),
    ("unknown model", "/v2/models/nope/infer", json_body(), JSON, 400),
    ("model not ready", "/v2/models/sleepy/infer", json_body(), JSON, 503),
    (
        "binary header lies",
        f"/v2/models/{MODEL}/infer",
        b'{"inputs": []}',
        {"inference-header-content-length": "999"},
        400,
    ),
]


@pytest.mark.parametrize(("case", "path", "body", "headers", "status"), CASES, ids=[c[0] for c in CASES])
def test_fast_path_answers_as_kserve_does(
    case: str, path: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    counted: dict[bool, list[str | None]] = {True: [], False: []}
    answers = {}
    for fast in (False, True):
        app = build(fast, counted[fast])
        answers[fast] = post(app, path, body, headers)
    slow, quick = answers[False], answers[True]
    assert slow.status_code == quick.status_code == status, (slow.text, quick.text)
    assert quick.content == slow.content
    for name in ("content-type", "content-length", "inference-header-content-length"):
        assert quick.headers.get(name) == slow.headers.get(name), name
    assert counted[True] == counted[False]  # rejected requests are counted the same way
    if status == 200:
        assert quick.headers["content-length"] == str(len(quick.content))


def test_fast_path_answers_infer_itself_and_hands_on_everything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = InferFastPath._infer

    async def spy(self: InferFastPath, name: str, body: bytes, headers: dict[str, str]) -> Any:
        seen.append(name)
        return await original(self, name, body, headers)

    monkeypatch.setattr(InferFastPath, "_infer", spy)
    app = build(True, [])
    answer = post(app, f"/v2/models/{MODEL}/infer", json_body(), JSON)
    assert answer.json()["outputs"][0]["data"] == [3.0, -4.0]
    assert seen == [MODEL]
    cloud_event = {**JSON, "ce-specversion": "1.0", "ce-id": "1", "ce-source": "t", "ce-type": "t"}
    post(app, f"/v2/models/{MODEL}/infer", json_body(), cloud_event)
    post(app, f"/v2/models/{MODEL}/infer", json_body(), {"content-type": "text/plain"})
    post(app, f"/v2/models/{MODEL}/versions/1/infer", json_body(), JSON)
    assert seen == [MODEL]  # all three went to FastAPI

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(f"/v2/models/{MODEL}/ready")

    assert asyncio.run(get()).json() == {"name": MODEL, "ready": True}


def test_json_without_a_content_type_is_understood_as_json() -> None:
    """tritonclient.http sends JSON requests with no Content-Type; KServe's route reads such a
    body as bytes and refuses it (400 'received byte inputs, but the inference header is
    missing'). The fast path reads it as the JSON it is, and bytes that are not JSON get the 400
    that says so."""
    assert post(build(False, []), f"/v2/models/{MODEL}/infer", json_body(), {}).status_code == 400
    answer = post(build(True, []), f"/v2/models/{MODEL}/infer", json_body(), {})
    assert answer.status_code == 200 and answer.json()["outputs"]
    rejected: list[str | None] = []
    answer = post(build(True, rejected), f"/v2/models/{MODEL}/infer", b"\x00\x01", {})
    assert answer.status_code == 400 and "not JSON" in answer.json()["error"] and rejected == [MODEL]


def test_fast_path_answers_bodies_that_are_not_json_with_a_counted_400() -> None:
    """FastAPI's own validation answers these 422 (uncounted); the fast path, as promised, 400."""
    rejected: list[str | None] = []
    app = build(True, rejected)
    answer = post(app, f"/v2/models/{MODEL}/infer", b"", JSON)
    assert answer.status_code == 400 and "empty" in answer.json()["error"]
    answer = post(app, f"/v2/models/{MODEL}/infer", b"{not json", JSON)
    assert answer.status_code == 400 and "the request is not JSON" in answer.json()["error"]
    assert rejected == [MODEL, MODEL]
    assert post(build(False, []), f"/v2/models/{MODEL}/infer", b"{not json", JSON).status_code == 422


def responses() -> dict[str, Any]:
    """Name -> a function making a fresh InferResponse (to_rest changes the one it reads)."""
    from kserve.protocol.infer_type import RequestedOutput

    def answer(
        binary: bool = False, requested: list[RequestedOutput] | None = None, **kw: Any
    ) -> InferResponse:
        ids = np.array([b"i1", "ü2".encode()], dtype=np.object_)
        return InferResponse(
            response_id="r1",
            model_name=MODEL,
            model_version="v7",
            infer_outputs=[
                InferOutput("item_ids", [2], "BYTES", data=ids),
                InferOutput("scores", [2], "FP32", data=np.array([0.1, 1 / 3], np.float32)),
                InferOutput("level", [1], "INT32", data=np.array([2], np.int32), parameters=kw.get("p")),
                InferOutput("names", [1, 2], "BYTES", data=np.array([["a", 5]], dtype=np.object_)),
            ],
            parameters={"degrade_level": 0, "experiment_variant": "b", "flag": True},
            use_binary_outputs=binary,
            requested_outputs=requested,
        )

    return {
        "all json": answer,
        "output parameters": lambda: answer(p={"unit": "level", "binary_data_size": 4}),
        "requested as json": lambda: answer(
            requested=[RequestedOutput("scores"), RequestedOutput("item_ids")]
        ),
        "requested binary": lambda: answer(requested=[RequestedOutput("scores", {"binary_data": True})]),
        "binary outputs": lambda: answer(binary=True),
        "json asked over binary": lambda: answer(True, [RequestedOutput("level", {"binary_data": False})]),
    }


@pytest.mark.parametrize("case", list(responses()))
def test_json_outputs_is_to_rest_for_json_answers(case: str) -> None:
    from inference.dataplane import json_outputs

    make = responses()[case]
    kserve_body, json_length = make().to_rest()
    ours = json_outputs(make())
    if json_length is not None:  # something goes binary: KServe's own path
        assert ours is None
    else:
        assert ours is not None and json.loads(json.dumps(ours)) == json.loads(json.dumps(kserve_body))
        assert json.dumps(ours) == json.dumps(kserve_body)  # same keys in the same order too
