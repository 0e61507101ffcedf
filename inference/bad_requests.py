"""Bad requests that never reach a model: answered 400 naming what is wrong, and counted.

KServe rejects two kinds before ``Model.predict`` runs, so the models' own counters never see
them:

- a body that is not a v2 request (malformed JSON, a binary payload whose header lies):
  KServe raises ``InvalidInput`` while decoding and answers 400;
- an unknown model name: KServe answers ``ModelNotFound`` with a 404. On ``.../infer`` that is
  the caller's bad input, so it becomes a 400 naming ``model_name`` and the served models.
  Other routes (``/ready``, repository ``/load``) keep KServe's 404: not found is what they mean.
- a model version (``/v2/models/{name}/versions/{version}/...``, or ``model_version``): KServe
  raises NotImplementedError, answered 501. Our servers serve one version per model name, so a
  version is a parameter they do not take: 400 saying so (found by the fuzz test; a 5xx tells a
  client to retry what can never work).

KServe registers its exception handlers when each server process builds its app (after our
code ran), so ours are added right after KServe's, through ``RESTServer._add_exception_handlers``
(re-check on a KServe upgrade, like the other overrides in inference/server.py).
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from kserve.errors import InvalidInput, ModelNotFound, invalid_input_handler, model_not_found_handler
from kserve.protocol.rest import server as rest_server

# model name from the path (or None) -> count one rejected request; set per process by install()
Count = Callable[[str | None], None]
_hook: dict[str, Count] = {}
_kserve_add_exception_handlers = rest_server.RESTServer._add_exception_handlers


def install(count: Count) -> None:
    """Count this process's rejected requests with ``count`` (each server process calls it)."""
    _hook["count"] = count
    rest_server.RESTServer._add_exception_handlers = _add_exception_handlers  # type: ignore[method-assign]


def _count(request: Request) -> None:
    count = _hook.get("count")
    if count is not None:
        count(request.path_params.get("model_name"))


def _served(request: Request) -> list[str]:
    registry = getattr(request.app.state, "recsys_registry", None)
    return sorted(registry.get_models()) if registry is not None else []


async def invalid_body(request: Request, exc: Exception) -> Response:
    _count(request)
    return await invalid_input_handler(request, exc)


async def unknown_model(request: Request, exc: Exception) -> Response:
    if not request.url.path.endswith("/infer"):
        return await model_not_found_handler(request, exc)
    _count(request)
    name = request.path_params.get("model_name")
    return JSONResponse(
        status_code=HTTPStatus.BAD_REQUEST,
        content={"error": f"model_name {name!r}: no such model here (served: {_served(request)})"},
    )


async def unsupported(request: Request, exc: Exception) -> Response:
    _count(request)
    return JSONResponse(
        status_code=HTTPStatus.BAD_REQUEST,
        content={"error": f"{exc}: these servers serve one version per model; omit the version"},
    )


def _add_exception_handlers(self: rest_server.RESTServer, app: FastAPI) -> None:
    _kserve_add_exception_handlers(self, app)
    app.state.recsys_registry = self.dataplane.model_registry
    app.add_exception_handler(InvalidInput, invalid_body)
    app.add_exception_handler(ModelNotFound, unknown_model)
    app.add_exception_handler(NotImplementedError, unsupported)
