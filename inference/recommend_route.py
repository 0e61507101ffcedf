"""``GET /recommend?user_id=..&k=..&scene=..&exclude=a,b``: the transformer for callers without
a v2 client, with the v2 route's limits and messages (inference/transformer.py).

The query string is decoded here, strictly: a value that is not UTF-8 (``%ff%fe``) is a 400, as
on v2, where Starlette would have replaced it with U+FFFD and served that user. The OpenAPI
description is written out (``OPENAPI``) because the parameters are parsed by hand, so that it
says what the route does: ``user_id`` required, 400 with ``{"error": ...}`` for bad input.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse

from inference import transformer_metrics as metrics
from inference.chain import Request
from inference.errors import RequestError
from inference.transformer import MAX_EXCLUDE, MAX_ID, MAX_K, RecommenderModel

PARAMETERS = ("user_id", "k", "scene", "exclude")
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_ITEM = {
    "type": "object",
    "properties": {
        "item_id": {"type": "string"},
        "score": {"type": "number"},
        "channels": {"type": "array", "items": {"type": "string"}},
    },
}
OPENAPI: dict[str, Any] = {
    "parameters": [
        {"name": "user_id", "in": "query", "required": True,
         "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID}, "description": "the user's id"},
        {"name": "k", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10}},
        {"name": "scene", "in": "query", "required": False,
         "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID}},
        {"name": "exclude", "in": "query", "required": False, "schema": {"type": "string"},
         "description": f"comma-separated item ids never returned (at most {MAX_EXCLUDE})"},
    ],
    "responses": {
        "200": {"description": "the user's list", "content": {"application/json": {"schema": {
            "type": "object",
            "properties": {
                "request_id": {"type": "string"}, "user_id": {"type": "string"},
                "items": {"type": "array", "items": _ITEM}, "experiment_variant": {"type": "string"},
                "degrade_level": {"type": "integer", "minimum": 0, "maximum": 3},
                "model_version": {"type": "string"},
            },
        }}}},
        "400": {"description": "bad input, naming the parameter",
                "content": {"application/json": {"schema": _ERROR}}},
    },
}  # fmt: skip


def _id(value: str, name: str) -> str:
    if not value or len(value) > MAX_ID:
        raise RequestError(f"query parameter '{name}': ids must be 1..{MAX_ID} characters")
    return value


def parse_query(raw: bytes) -> Request:
    """The same request the v2 route builds, from a query string; RequestError naming the field."""
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeError as e:
        raise RequestError(f"query string: not UTF-8 ({e.reason})") from e
    query: dict[str, str] = {}
    for name, value in pairs:
        if name not in PARAMETERS:
            raise RequestError(f"query parameter '{name}' is unknown (parameters: {list(PARAMETERS)})")
        if name in query:
            raise RequestError(f"query parameter '{name}': given twice")
        query[name] = value
    if "user_id" not in query:
        raise RequestError("query parameter 'user_id' is missing")
    user_id = _id(query["user_id"], "user_id")
    try:
        k = int(query.get("k", "10"))
    except ValueError as e:
        raise RequestError(f"query parameter 'k': {query['k']!r:.40} is not an integer") from e
    if not 1 <= k <= MAX_K:
        raise RequestError(f"query parameter 'k': {k} is out of range (1..{MAX_K})")
    scene = _id(query["scene"], "scene") if "scene" in query else None
    exclude = [e for e in query.get("exclude", "").split(",") if e]
    if len(exclude) > MAX_EXCLUDE:
        raise RequestError(f"query parameter 'exclude': more than {MAX_EXCLUDE} ids")
    return Request(user_id, k, scene, {_id(e, "exclude") for e in exclude})


def add_recommend_route(app: FastAPI, model: RecommenderModel) -> None:
    async def recommend(http: HttpRequest) -> JSONResponse:
        try:
            req = parse_query(http.scope.get("query_string", b""))
        except RequestError:
            metrics.REQUESTS.labels(status="invalid_input", variant="").inc()
            raise
        request_id = str(uuid.uuid4())
        result, variant = await model.recommend(req, request_id)
        return JSONResponse(
            {
                "request_id": request_id,
                "user_id": req.user_id,
                "items": [
                    {"item_id": i, "score": s, "channels": c.split(",") if c else []}
                    for i, s, c in zip(result.items, result.scores, result.channels, strict=True)
                ],
                "experiment_variant": variant.name,
                "degrade_level": result.degrade_level,
                "model_version": result.model_version,
            }
        )

    app.add_api_route("/recommend", recommend, methods=["GET"], openapi_extra=OPENAPI,
                      summary="a user's recommendations as plain JSON")  # fmt: skip
