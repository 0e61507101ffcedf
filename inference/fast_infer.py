"""The v2 infer route without FastAPI's per-request machinery, on both servers.

Every scoring request is ``POST /v2/models/{name}/infer``. Through FastAPI it passes the router,
the dependency solver, a pydantic ``InferenceRequest`` built from the JSON body, KServe's
conversion of that into an ``InferRequest`` and a Starlette ``Response``: about 14 % of a
transformer worker's CPU under load (py-spy, 2026-11-29), more than the endpoint's own work.

``InferFastPath`` is a plain ASGI middleware inside KServe's FastAPI app that answers that one
route itself and does what KServe's ``V2Endpoints.infer`` does: the model's readiness, the
data plane's ``decode`` / ``infer`` / ``encode`` (``inference/dataplane.py``), the response
headers it sets. The model, the data plane and KServe's metrics are the same objects as on the
FastAPI path. An exception goes to the handler the app registered for it (KServe's and ours in
``inference/bad_requests.py``), so errors read and count as before. Anything it does not expect
(a cloud event, another content type, a root path, a response that is not bytes) is handed to
FastAPI unchanged. One answer differs, for the better: a body sent as JSON that is not JSON is a
counted 400 naming the problem (FastAPI's validation answers 422). Re-check against
``kserve.protocol.rest.v2_endpoints`` on a KServe upgrade; tests/unit/test_fast_infer.py pins the
behaviour both paths must share.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.rest.v2_datamodels import InferenceResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from inference.dataplane import raw_infer_request
from inference.limits import replay as body_again

log = logging.getLogger("kserve.recsys.fast_infer")
Handler = Callable[[Request, Exception], Awaitable[Any]]
INFER_ROUTE = re.compile(r"/v2/models/([^/]+)/infer")


class InferFastPath:
    def __init__(self, app: ASGIApp, fastapi_app: FastAPI, dataplane: DataPlane) -> None:
        self.app, self.fastapi_app, self.dataplane = app, fastapi_app, dataplane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            match = INFER_ROUTE.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        replay = body_again(body, receive)
        if not _plain_v2(headers):
            await self.app(scope, replay, send)
            return
        name = match.group(1)
        scope["path_params"] = {"model_name": name}  # what the error handlers read
        try:
            content, response_headers = await self._infer(name, body, headers)
        except Exception as exc:
            handled, handler = self._handler(exc)
            if handler is None:
                raise
            response = await handler(Request(scope, replay), exc)
            await response(scope, replay, send)
            if handled is Exception:  # Starlette re-raises these after the 500, for the server log
                log.error("Exception in ASGI application", exc_info=exc)
            return
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response_headers.items()]
        if "content-length" not in {k.lower() for k in response_headers}:
            raw.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": content})

    async def _infer(self, name: str, body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        """``V2Endpoints.infer``: the answer's bytes and headers."""
        if not await self.dataplane.model_ready(name, True):  # raises ModelNotFound for no model
            raise ModelNotReady(name)
        if INFERENCE_CONTENT_LENGTH_HEADER in headers:
            request = self.dataplane.decode_inference_request(body, headers, name)
        elif not body:
            raise InvalidInput("the request body is empty: expected a v2 inference request")
        else:  # a JSON request: the whole body is the JSON part
            request = raw_infer_request(body, len(body), name)
        response, response_headers = await self.dataplane.infer(name, request, headers)
        content, encoded_headers = self.dataplane.encode(
            model_name=name, response=response, headers=headers, req_attributes={}
        )
        if not isinstance(content, bytes):
            return self._fallback_encode(content, response_headers | encoded_headers)
        response_headers.update(encoded_headers)
        response_headers.pop("content-length", None)  # as KServe: stale lower-case spellings go
        response_headers.pop("content-type", None)
        return content, response_headers

    def _fallback_encode(self, content: Any, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        """KServe's way for a response dict: its pydantic model, serialized by FastAPI."""
        headers.pop("content-length", None)
        headers.pop("content-type", None)
        response = JSONResponse(jsonable_encoder(InferenceResponse.model_validate(content)), headers=headers)
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]
        return bytes(response.body), {k: v for k, v in raw if k != "content-length"}

    def _handler(self, exc: Exception) -> tuple[type | None, Handler | None]:
        """The handler the app registered for ``exc`` (nearest class first, as Starlette looks)."""
        handlers = self.fastapi_app.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                return cls, handlers[cls]  # type: ignore[return-value]
        return None, None


def _plain_v2(headers: dict[str, str]) -> bool:
    """A v2 request this path decodes as KServe would: binary (with its header) or JSON (by its
    content type, as FastAPI decides), not a cloud event."""
    if any(k.startswith("ce-") for k in headers):
        return False
    if INFERENCE_CONTENT_LENGTH_HEADER in headers:
        return True
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    # no content type at all: tritonclient.http sends its JSON requests so; a body that is not
    # JSON then gets the 400 that says so
    return kind in ("", "application/json") or (kind.startswith("application/") and kind.endswith("+json"))


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
