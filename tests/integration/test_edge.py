"""The servers' edge with auth on, as the chart runs it: real predictor and transformer processes,
keys and a JWT secret from RECSYS_AUTH_* variables, the transformer showing its own key to the
predictor; REST and gRPC; the admin routes, the audit log, the rate limit, the bind address."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import jwt
import numpy as np
import pytest
from serving_helpers import RedisServer, free_port, metric, start, stop, wait_ready

KEYS = {"shop": "shop-key-0123456789ab", "burst": "burst-key-0123456789a", "ranker": "ranker-key-0123456789a"}
ADMIN = "ops-key-0123456789abcd"
SECRET = "jwt-secret-0123456789abcdef0123456789"
INFER = {"inputs": [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["u000001"]}]}


@pytest.fixture(scope="module")
def edge(served_data: Path, served_bundle: Path, private_redis: RedisServer) -> Iterator[dict[str, object]]:
    logs = served_data / "logs-edge"
    audit = served_data / "audit-edge" / "audit.jsonl"
    ports = {name: free_port() for name in ("p_http", "p_grpc", "t_http", "t_grpc")}
    env = {
        "RECSYS_AUTH_ENABLED": "true",
        "RECSYS_AUTH_API_KEYS": ",".join(f"{name}={key}" for name, key in KEYS.items()),
        "RECSYS_AUTH_ADMIN_KEYS": f"ops={ADMIN}",
        "RECSYS_AUTH_JWT_ALGORITHM": "HS256",
        "RECSYS_AUTH_JWT_SECRET": SECRET,
        "RECSYS_AUTH_AUDIT_LOG": str(audit),
        "RECSYS_AUTH_RATE_LIMIT_PER_S": "20",
        "RECSYS_AUTH_RATE_LIMIT_BURST": "10",
    }
    predictor = start("inference.predictor_main", logs, served_data, ports["p_http"],
                      "--model_uri", str(served_bundle), grpc_port=ports["p_grpc"], env=env)  # fmt: skip
    transformer = start("inference.transformer_main", logs, served_data, ports["t_http"],
                        "--predictor_host", f"127.0.0.1:{ports['p_http']}", "--store_url", private_redis.url,
                        "--bundle", str(served_bundle), "--exposure_dir", str(served_data / "exposures-edge"),
                        grpc_port=ports["t_grpc"],
                        env={**env, "RECSYS_AUTH_PREDICTOR_KEY": KEYS["ranker"]})  # fmt: skip
    try:
        for proc, port in ((predictor, ports["p_http"]), (transformer, ports["t_http"])):
            wait_ready(proc, f"127.0.0.1:{port}", logs / f"{proc.args[2]}-{port}.log")  # type: ignore[index]
        yield {"t": f"127.0.0.1:{ports['t_http']}", "p": f"127.0.0.1:{ports['p_http']}",
               "t_grpc": f"127.0.0.1:{ports['t_grpc']}", "ports": ports, "audit": audit}  # fmt: skip
    finally:
        stop(transformer)
        stop(predictor)


def call(
    url: str, path: str, body: object = None, **headers: str
) -> tuple[int, dict[str, object], dict[str, str]]:
    data = (
        json.dumps(body).encode()
        if body is not None
        else (b"" if path.endswith(("load", "unload")) else None)
    )
    sent = {"Content-Type": "application/json", **{k.replace("_", "-"): v for k, v in headers.items()}}
    req = urllib.request.Request(f"http://{url}{path}", data=data, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), dict(e.headers)


def token(**claims: object) -> str:
    return jwt.encode(
        {"sub": "mobile-app", "exp": int(time.time()) + 300, **claims}, SECRET, algorithm="HS256"
    )


def test_without_a_credential_only_the_probes_and_metrics_answer(edge: dict[str, object]) -> None:
    for url in (edge["t"], edge["p"]):
        status, body, headers = call(str(url), "/v2/models/recsys/infer", INFER)
        assert status == 401 and "no credential" in str(body["error"])
        assert headers.get("www-authenticate", headers.get("WWW-Authenticate", "")).startswith("Bearer")
        assert call(str(url), "/v2/health/ready")[0] == 200
        with urllib.request.urlopen(f"http://{url}/metrics", timeout=10) as resp:
            assert resp.status == 200
    assert call(str(edge["t"]), "/recommend?user_id=u000001")[0] == 401
    assert call(str(edge["t"]), "/v2/models/recsys")[0] == 401  # metadata too
    assert call(str(edge["t"]), "/v2/models/recsys/infer", INFER, x_api_key="wrong-key-0123456789")[0] == 401


def test_a_client_key_or_a_token_is_served_end_to_end(edge: dict[str, object]) -> None:
    status, body, _ = call(str(edge["t"]), "/v2/models/recsys/infer", INFER, x_api_key=KEYS["shop"])
    assert status == 200
    level = next(o for o in body["outputs"] if o["name"] == "degrade_level")["data"][0]  # type: ignore[union-attr]
    assert level == 0  # the predictor scored: the transformer's own key was accepted there
    assert call(str(edge["t"]), "/v2/models/recsys/infer", INFER, authorization=f"Bearer {token()}")[0] == 200
    assert (
        call(str(edge["t"]), "/recommend?user_id=u000001", authorization=f"Bearer {KEYS['shop']}")[0] == 200
    )
    expired = token(exp=int(time.time()) - 600)
    status, body, _ = call(
        str(edge["t"]), "/v2/models/recsys/infer", INFER, authorization=f"Bearer {expired}"
    )
    assert status == 401 and "expired" in str(body["error"]).lower()


def test_grpc_follows_the_same_rules(edge: dict[str, object]) -> None:
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    async def infer(metadata: tuple[tuple[str, str], ...]) -> list[bytes]:
        uid = InferInput("user_id", [1], "BYTES")
        uid.set_data_from_numpy(np.array([b"u000001"], dtype=np.object_))
        client = InferenceGRPCClient(str(edge["t_grpc"]), retries=0)
        try:
            answer = await client.infer(InferRequest("recsys", [uid]), headers=metadata)
        finally:
            await client.close()
        return list(answer.get_output_by_name("item_ids").as_numpy())

    with pytest.raises(grpc.aio.AioRpcError) as e:
        asyncio.run(infer(()))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert len(asyncio.run(infer((("x-api-key", KEYS["shop"]),)))) == 10
    assert len(asyncio.run(infer((("authorization", f"Bearer {token()}"),)))) == 10


def test_admin_routes_need_an_admin_credential_and_are_audited(edge: dict[str, object]) -> None:
    load = "/v2/repository/models/recsys/load"
    assert call(str(edge["t"]), load)[0] == 401
    status, body, _ = call(str(edge["t"]), load, x_api_key=KEYS["shop"])
    assert status == 403 and "not an admin" in str(body["error"])
    assert call(str(edge["t"]), load, x_api_key=ADMIN)[0] == 200
    assert call(str(edge["t"]), load, authorization=f"Bearer {token(scope='recsys:admin')}")[0] == 200
    assert call(str(edge["p"]), "/v2/repository/models/recsys/unload", x_api_key=KEYS["shop"])[0] == 403
    audit_path = Path(str(edge["audit"]))
    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    admin_calls = [
        (r["server"], r["client"], r["outcome"], r.get("status"))
        for r in records
        if "repository" in r["action"]
    ]
    assert ("transformer", None, "denied", 401) in admin_calls
    assert ("transformer", "shop", "denied", 403) in admin_calls
    assert ("transformer", "ops", "ok", 200) in admin_calls
    assert ("transformer", "mobile-app", "ok", 200) in admin_calls
    assert ("predictor", "shop", "denied", 403) in admin_calls
    assert all(r["peer"] == "127.0.0.1" and r["time"] for r in records)
    text = audit_path.read_text()
    assert not any(key in text for key in [*KEYS.values(), ADMIN, SECRET])


def test_a_client_over_its_rate_gets_429_with_retry_after(edge: dict[str, object]) -> None:
    before = metric(str(edge["t"]), "server_edge_refusals_total", reason="rate_limited")
    answers = [
        call(str(edge["t"]), "/v2/models/recsys/infer", INFER, x_api_key=KEYS["burst"]) for _ in range(30)
    ]
    limited = [a for a in answers if a[0] == 429]
    assert limited and all(a[0] in (200, 429) for a in answers)
    assert all(int(a[2].get("retry-after", a[2].get("Retry-After", "0"))) >= 1 for a in limited)
    assert "at most 20 requests/s (burst 10)" in str(limited[0][1]["error"])
    assert metric(str(edge["t"]), "server_edge_refusals_total", reason="rate_limited") - before == len(
        limited
    )
    assert (
        call(str(edge["t"]), "/v2/models/recsys/infer", INFER, x_api_key=KEYS["shop"])[0] == 200
    )  # others go on


def test_both_servers_listen_on_loopback_only(edge: dict[str, object]) -> None:
    ports = set(edge["ports"].values())  # type: ignore[union-attr]
    listening: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.rsplit(":", 1)
            if state == "0A" and int(port, 16) in ports:  # LISTEN
                listening[int(port, 16)] = address
    assert set(listening) == ports
    # 127.0.0.1 (gRPC: as the IPv4-mapped ::ffff:127.0.0.1), never 0.0.0.0 or [::]
    assert set(listening.values()) <= {"0100007F", "0000000000000000FFFF00000100007F"}, listening
