"""KServe's routes with v2 infer tried first: every path still reaches the endpoint it did."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.rest.server import RESTServer
from starlette.routing import Match

from inference import server

PATHS = [
    ("GET", "/"),
    ("GET", "/metrics"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/recsys"),
    ("POST", "/v1/models/recsys:predict"),
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/recsys"),
    ("GET", "/v2/models/recsys/ready"),
    ("POST", "/v2/models/recsys/infer"),
    ("POST", "/v2/models/recsys/versions/1/infer"),
    ("POST", "/v2/repository/models/recsys/load"),
    ("POST", "/v2/repository/models/recsys/unload"),
]


def app(register: Any) -> FastAPI:
    app = FastAPI()
    rest = SimpleNamespace(
        dataplane=DataPlane(model_registry=ModelRepository()), model_repository_extension=None
    )
    register(rest, app)
    return app


def endpoint(app: FastAPI, method: str, path: str) -> tuple[int, str]:
    """(position of the first top-level route that matches fully, the endpoint it dispatches to)."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }
    for position, route in enumerate(app.router.routes):
        match, child = route.matches(dict(scope))
        if match is not Match.FULL:
            continue
        router = getattr(route, "original_router", None)
        if router is None:
            return position, route.endpoint.__qualname__
        for inner in router.routes:
            if inner.matches({**scope, **child})[0] is Match.FULL:
                return position, inner.endpoint.__qualname__
    raise AssertionError(f"nothing serves {method} {path}")


def test_infer_first_and_every_path_unchanged() -> None:
    assert RESTServer._register_endpoints is server._register_endpoints  # installed on import
    stock, ours = app(server._kserve_register_endpoints), app(server._register_endpoints)
    for method, path in PATHS:
        assert endpoint(ours, method, path)[1] == endpoint(stock, method, path)[1], path
    assert endpoint(ours, "POST", "/v2/models/recsys/infer")[0] == 0
    assert endpoint(stock, "POST", "/v2/models/recsys/infer")[0] > 0
    first = ours.router.routes[0].original_router.routes[0]  # type: ignore[attr-defined]
    assert first.path == "/v2/models/{model_name}/infer"
