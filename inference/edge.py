"""The servers' edge: authentication, a per-client rate limit and the audit log, on REST and gRPC.

Roadmap item 1 of the seed. One ``Edge`` per server process (``install``), applied by an ASGI
middleware (the outermost: an unauthenticated body is not even read) and a gRPC interceptor.
Who may call what is inference/auth.py's. The rate limit is a token bucket per client (the
authenticated name, else the peer's address): ``rate_limit_per_s`` refilled, ``rate_limit_burst``
deep, per process (with ``--workers N`` a client gets N buckets); an empty bucket is 429 with
``Retry-After`` (gRPC: RESOURCE_EXHAUSTED). Every refusal is counted in
``server_edge_refusals_total{reason}``. The audit log gets one JSON line (who, what, when,
outcome) per admin call (allowed or not) and per authentication failure; lines are written with
one ``write`` each to a file opened for appending, so worker processes can share it.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from grpc.aio import ServerInterceptor
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inference.auth import Authenticator, AuthSettings, Caller, Denied, load_auth_settings
from inference.limits import refuse
from recsys.errors import ConfigError

REFUSALS = Counter("server_edge_refusals", "Requests refused at the edge", ["reason"])
PUBLIC_PATHS = ("/", "/metrics", "/v2/health/live", "/v2/health/ready")
ADMIN_PREFIX = "/v2/repository/"
PUBLIC_RPCS = {"ServerLive", "ServerReady", "ModelReady"}
ADMIN_RPCS = {"RepositoryModelLoad", "RepositoryModelUnload"}
MAX_BUCKETS = 100_000


def public(path: str) -> bool:
    """Probes and Prometheus: health, readiness (v2 and v1) and /metrics."""
    if path in PUBLIC_PATHS:
        return True
    if path.startswith("/v2/models/") and path.endswith("/ready"):
        return True
    return path.startswith("/v1/models/") and ":" not in path


class TokenBuckets:
    """Per-client token buckets; all on one event loop, so no lock."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait(self, client: str) -> float:
        """0 if ``client`` may go now (a token is taken), else the seconds until it may."""
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()  # a full bucket is what a new client gets anyway
            self._buckets[client] = (tokens - 1, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1 - tokens) / self.rate


class AuditLog:
    def __init__(self, target: str | None, server: str) -> None:
        self.server = server
        self._fd: int | None = None
        if target == "-":
            self._fd = sys.stderr.fileno()
        elif target:
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            self._fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def record(self, **fields: Any) -> None:
        if self._fd is None:
            return
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "server": self.server,
            **fields,
        }
        os.write(self._fd, (json.dumps(entry, default=str) + "\n").encode())


class Edge:
    """What one server process checks at its edge."""

    def __init__(self, settings: AuthSettings, server: str) -> None:
        self.settings = settings
        self.auth = Authenticator(settings) if settings.enabled else None
        self.buckets = TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst) if (
            settings.rate_limit_per_s > 0) else None  # fmt: skip
        self.audit = AuditLog(settings.audit_log, server)
        self.guarded = self.auth is not None or self.buckets is not None

    def admit(self, credential: str | None, admin: bool, peer: str, what: str) -> tuple[Caller | None, float]:
        """(the caller, 0) or (caller, seconds to wait) when rate-limited; Denied (audited)
        when the credential does not allow ``what``."""
        caller: Caller | None = None
        if self.auth is not None:
            try:
                caller = self.auth.caller(credential)
                if admin and not caller.admin:
                    raise Denied(403, f"{caller.name} is not an admin: {what} needs an admin credential")
            except Denied as e:
                REFUSALS.labels(reason="unauthenticated" if e.status == 401 else "forbidden").inc()
                self.audit.record(client=caller.name if caller else None, peer=peer, action=what,
                                  outcome="denied", status=e.status, reason=e.reason)  # fmt: skip
                raise
        if self.buckets is not None:
            wait = self.buckets.wait(caller.name if caller else peer)
            if wait:
                REFUSALS.labels(reason="rate_limited").inc()
                return caller, wait
        return caller, 0.0


_edge: list[Edge | None] = [None]


def install(settings: AuthSettings, server: str) -> Edge:
    """This process's edge (each worker process installs its own)."""
    _edge[0] = Edge(settings, server)
    return _edge[0]


def current() -> Edge | None:
    return _edge[0]


def _credential(authorization: str | None, api_key: str | None) -> str | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return api_key or None


class EdgeGuard:
    """The ASGI side: public paths pass, the rest is admitted by the process's ``Edge``; admin
    calls are audited with their outcome."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        edge = _edge[0]
        if edge is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        admin = path.startswith(ADMIN_PREFIX)
        if not admin and (not edge.guarded or public(path)):
            await self.app(scope, receive, send)  # the hot path with the edge off: two checks
            return
        headers = dict(scope.get("headers") or ())
        credential = _credential(_text(headers.get(b"authorization")), _text(headers.get(b"x-api-key")))
        client = scope.get("client")
        peer = client[0] if client else "-"
        what = f"{scope['method']} {path}"
        try:
            caller, wait = edge.admit(credential, admin, peer, what)
        except Denied as e:
            extra = ((b"www-authenticate", b'Bearer realm="recsys"'),) if e.status == 401 else ()
            await refuse(send, e.status, e.reason, extra)
            return
        if wait:
            retry = str(max(1, math.ceil(wait))).encode()
            rate, burst = edge.settings.rate_limit_per_s, edge.settings.rate_limit_burst
            limit = f"at most {rate:g} requests/s (burst {burst})"
            await refuse(send, 429, f"rate limit: {limit}; retry later", ((b"retry-after", retry),))
            return
        if not admin:
            await self.app(scope, receive, send)
            return
        status = [0]

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            outcome = "ok" if 0 < status[0] < 400 else "failed"
            name = caller.name if caller else None
            edge.audit.record(client=name, peer=peer, action=what, outcome=outcome, status=status[0])


def _grpc_peer(peer: str) -> str:
    """``ipv4:10.0.0.7:51234`` -> ``10.0.0.7``, ``ipv6:[::1]:51234`` -> ``::1``: the address, as on
    REST (the port differs per connection, and the rate limit is per client)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return peer


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


class EdgeInterceptor(ServerInterceptor):
    """The gRPC side, the same rules: metadata ``authorization`` / ``x-api-key``."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        edge = _edge[0]
        method = details.method.rsplit("/", 1)[-1]
        admin = method in ADMIN_RPCS
        handler = await continuation(details)
        if edge is None or handler is None or method in PUBLIC_RPCS or not (edge.guarded or admin):
            return handler
        metadata = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        credential = _credential(metadata.get("authorization"), metadata.get("x-api-key"))
        inner = handler.unary_unary
        if inner is None:
            return handler

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            peer = _grpc_peer(context.peer() or "-")
            try:
                caller, wait = edge.admit(credential, admin, peer, f"grpc {method}")
            except Denied as e:
                code = (
                    grpc.StatusCode.UNAUTHENTICATED if e.status == 401 else grpc.StatusCode.PERMISSION_DENIED
                )
                await context.abort(code, e.reason)
            if wait:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit; retry in {wait:.2f} s")
            if not admin:
                return await inner(request, context)
            outcome = "failed"
            try:
                result = await inner(request, context)
                outcome = "ok"
                return result
            finally:
                edge.audit.record(client=caller.name if caller else None, peer=peer, action=f"grpc {method}",
                                  outcome=outcome)  # fmt: skip

        return grpc.unary_unary_rpc_method_handler(
            guarded, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )  # fmt: skip


# the edge's flags: none carries a secret (keys and the HS256 secret come from RECSYS_AUTH_*)
EDGE_FLAGS = {
    "--auth": (
        "enabled",
        "on: a credential on every route but health and /metrics [env RECSYS_AUTH_ENABLED]",
    ),
    "--jwt_algorithm": ("jwt_algorithm", "HS256 or RS256: accept JWT bearer tokens"),
    "--jwt_public_key_file": ("jwt_public_key_file", "RS256: PEM public key"),
    "--jwks_file": ("jwks_file", "RS256: JWKS file (the token's kid picks the key)"),
    "--jwt_audience": ("jwt_audience", "required aud of tokens"),
    "--jwt_issuer": ("jwt_issuer", "required iss of tokens"),
    "--admin_scope": ("admin_scope", "scope of tokens allowed on load/unload [recsys:admin]"),
    "--rate_limit_per_s": ("rate_limit_per_s", "requests/s per client and process; 0 = off [0]"),
    "--rate_limit_burst": ("rate_limit_burst", "bucket depth per client [50]"),
    "--audit_log": ("audit_log", "JSONL audit of admin calls and auth failures: a file, or - (stderr)"),
}


def add_edge_flags(parser: Any) -> None:
    for flag, (_, help_text) in EDGE_FLAGS.items():
        parser.add_argument(flag, default=None, help=help_text)


def edge_settings(args: Any) -> AuthSettings:
    """``RECSYS_AUTH_*`` with the edge flags given on the command line."""
    given = {field: getattr(args, flag[2:]) for flag, (field, _) in EDGE_FLAGS.items()}
    if given["enabled"] is not None:
        if given["enabled"] not in ("on", "off"):
            raise ConfigError(f"--auth: must be on or off, got {given['enabled']!r}")
        given["enabled"] = given["enabled"] == "on"
    return load_auth_settings(**given)
