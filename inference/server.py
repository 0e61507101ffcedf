"""The KServe ModelServer both mains run, built the same way from KServe's own flags.

Per-request log lines are off unless asked for: uvicorn's access log and KServe's timing
middleware (``kserve.trace``) write three lines per request; at hundreds of requests per second
that costs more CPU than parts of the chain, and Prometheus already counts and times every one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from concurrent import futures
from typing import Any

import kserve
from fastapi import FastAPI
from grpc import aio
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc import interceptors as grpc_interceptors
from kserve.protocol.grpc import server as grpc_server
from kserve.protocol.grpc import servicer as grpc_servicer
from kserve.protocol.rest import server as rest_server
from kserve.protocol.rest.multiprocess.server import RESTServerProcess
from prometheus_client import multiprocess

from inference import connection_limits, edge
from inference.dataplane import V2DataPlane
from inference.edge import EdgeGuard, EdgeInterceptor
from inference.fast_infer import InferFastPath
from inference.limits import Limits, RequestLimits
from inference.settings import ServerSettings

PER_REQUEST_LOGGERS = ("uvicorn.access", "kserve.trace")


def set_request_logs(enabled: bool) -> None:
    """Per-request log lines on or off. Off, KServe's timing middleware is not installed either:
    all it does is time each request (process CPU time, a route lookup) for a ``kserve.trace``
    line that would be dropped; it cost ~10 % of the predictor's CPU under load. Call before the
    server starts (each worker process calls it again while KServe builds its app)."""
    for name in PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if enabled else logging.WARNING)
    _keep_timing_middleware[0] = enabled


_keep_timing_middleware = [True]
_limits = [Limits()]
_kserve_add_middlewares = rest_server.RESTServer._add_middlewares


def set_limits(limits: Limits) -> None:
    """The request and connection limits of this process (each worker process sets them again)."""
    _limits[0] = limits
    connection_limits.LIMITS[0] = limits
    connection_limits.install()


def configure_process(settings: ServerSettings, role: str) -> None:
    """What each server process (and each ``--workers`` process) sets before its app is built:
    request logs, limits, the edge (auth, rate limit, audit) and the bind address."""
    set_request_logs(settings.request_logs)
    set_limits(settings.limits)
    edge.install(settings.auth, role)
    _bind_host[0] = settings.bind_host


_bind_host = ["127.0.0.1"]


def _add_middlewares(self: rest_server.RESTServer, app: FastAPI) -> None:
    # the v2 infer route's fast path first: the innermost, so KServe's timing and access-log
    # middlewares (when on) still see every request
    app.add_middleware(InferFastPath, fastapi_app=app, dataplane=self.dataplane)
    if _keep_timing_middleware[0] or self.access_log_format:
        _kserve_add_middlewares(self, app)
    # no route or handler sees a body that is too big or too slow
    app.add_middleware(RequestLimits, limits=_limits[0])
    # the outermost: an unauthenticated or rate-limited request is refused before its body is read
    app.add_middleware(EdgeGuard)


rest_server.RESTServer._add_middlewares = _add_middlewares  # type: ignore[method-assign]
_kserve_rest_init = rest_server.RESTServer.__init__


def _rest_init(self: rest_server.RESTServer, *args: Any, **kwargs: Any) -> None:
    """KServe's REST server, on ``--bind_host`` instead of its fixed 0.0.0.0."""
    _kserve_rest_init(self, *args, **kwargs)
    self.config.host = _bind_host[0]


rest_server.RESTServer.__init__ = _rest_init  # type: ignore[method-assign]


async def _grpc_start(self: grpc_server.GRPCServer, max_workers: int) -> None:
    """KServe 0.21's ``GRPCServer.start`` with three changes: it listens on ``--bind_host``
    (KServe: always [::]), the edge's interceptor comes first, and KServe's interceptor that
    logs every call at INFO only when request logs are on."""
    interceptors: list[Any] = [EdgeInterceptor()]
    if _keep_timing_middleware[0]:
        interceptors.append(grpc_interceptors.LoggingInterceptor())
    interceptors.append(grpc_interceptors.ExceptionToStatusInterceptor())
    self._server = aio.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=interceptors,
        options=[
            ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
            ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
        ],
    )
    servicer = grpc_servicer.InferenceServicer(self._data_plane, self._model_repository_extension)
    grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
    host = _bind_host[0]
    self._server.add_insecure_port(f"[{host}]:{self._port}" if ":" in host else f"{host}:{self._port}")
    await self._server.start()
    await self._server.wait_for_termination()


grpc_server.GRPCServer.start = _grpc_start  # type: ignore[method-assign]

INFER_PATH = "/models/{model_name}/infer"
_kserve_register_endpoints = rest_server.RESTServer._register_endpoints


def _register_endpoints(self: rest_server.RESTServer, app: FastAPI) -> None:
    """KServe's routes with v2 ``infer`` tried first. Starlette matches a request against the
    routes in order, and KServe registers ~20 (docs, v1, v2 health and metadata) before the one
    every scoring request takes: 28 us of regex matching per request, 4 us with it first. No two
    routes match the same path, so the order changes nothing else."""
    _kserve_register_endpoints(self, app)
    for route in app.router.routes:
        router = getattr(route, "original_router", None)  # an included APIRouter (FastAPI 0.120+)
        if router is not None:
            router.routes.sort(key=_serves_infer, reverse=True)  # stable: the rest keep their order
    app.router.routes.sort(key=_serves_infer, reverse=True)


def _serves_infer(route: object) -> bool:
    """The v2 infer route, or an included router that holds it."""
    router = getattr(route, "original_router", None)
    if router is not None:
        return any(map(_serves_infer, router.routes))
    return str(getattr(route, "path", "")).endswith(INFER_PATH)


rest_server.RESTServer._register_endpoints = _register_endpoints  # type: ignore[method-assign]


WORKER_START_SECONDS = 300.0
_kserve_is_alive = RESTServerProcess.is_alive


def _is_alive(self: RESTServerProcess, timeout: float = 5) -> bool:
    """KServe's worker health check, with time for the worker to start. KServe pings each
    ``--workers`` process every 0.5 s from the moment it is spawned and kills it when no pong
    comes within 5 s; but a worker answers only once it has unpickled its model, which for us
    means building it (bundle, recall engine, store connections). A start slower than 5 s (seen
    at 6-9 s on a slow 2-vCPU VM, 2026-11-29) was killed and respawned, forever: 230 restarts in
    30 minutes, one worker serving alone. Until its first pong a worker gets
    ``WORKER_START_SECONDS``, checked without blocking (KServe's check blocks the parent's event
    loop, which also serves gRPC, for up to 5 s); after it, KServe's check as it is.

    A worker found dead or unresponsive (KServe then kills and replaces it) is marked dead for
    Prometheus' multi-process mode, so its ``live*`` gauges (pool queues, connections) stop
    counting; KServe never does this."""
    if getattr(self, "_recsys_started", False) or not self._process.is_alive():
        alive = _kserve_is_alive(self, timeout)
    else:
        alive = _starting(self)
    if not alive and os.environ.get("PROMETHEUS_MULTIPROC_DIR") and self._process.pid is not None:
        multiprocess.mark_process_dead(self._process.pid)
    return alive


def _starting(self: RESTServerProcess) -> bool:
    """A worker not yet started: alive while it answers within ``WORKER_START_SECONDS``."""
    first_ping = getattr(self, "_recsys_first_ping", None)
    if first_ping is None:
        self._parent_conn.send(b"ping")
        self._recsys_first_ping = first_ping = time.monotonic()
    if self._parent_conn.poll(0):
        self._parent_conn.recv()
        self._recsys_started = True
        return True
    return time.monotonic() - first_ping < WORKER_START_SECONDS


RESTServerProcess.is_alive = _is_alive  # type: ignore[method-assign]


def model_server(args: argparse.Namespace, settings: ServerSettings, role: str) -> kserve.ModelServer:
    """Built before the model loads: its constructor configures the logging the load reports
    through. ``--workers`` is KServe's: REST served by that many processes sharing the port."""
    server = kserve.ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    # handed to the REST and gRPC servers only in start(), so replacing it here is safe
    server.dataplane = V2DataPlane(model_registry=server.registered_models)
    configure_process(settings, role)
    use_event_loop(args.event_loop)
    return server


def use_event_loop(choice: str) -> str:
    """Make KServe's ``--event_loop`` flag true: ``auto`` (its default) and ``uvloop`` promise
    uvloop, but ``ModelServer.start`` runs ``asyncio.run``, which builds a plain asyncio loop.
    uvloop's loop costs the transformer ~1 ms less CPU per request (fewer syscalls and wake-ups)."""
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # KServe's setup_event_loop() asks for the current loop first, which uvloop will not invent
    asyncio.set_event_loop(uvloop.new_event_loop())
    return "uvloop"
