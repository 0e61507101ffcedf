"""Fuzzing both servers, real processes on loopback: hypothesis over v2 infer bodies (JSON and
binary, valid-looking and not) and schemathesis over every operation of each server's OpenAPI
spec. Nothing may answer 5xx or hang (10 s), and both servers must still serve afterwards.

Bounded to about two minutes in all (``FUZZ_EXAMPLES``; ``RECSYS_FUZZ_EXAMPLES`` raises it for
a longer run). The model repository's load/unload are left out of the schemathesis run: they
are admin actions (tests/integration/test_transformer.py covers their lifecycle), and an
unloaded model's 503 is the answer a client should get.
"""

from __future__ import annotations

import json
import os
import struct
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_helpers import RedisServer, free_port, start, stop, wait_ready

FUZZ_EXAMPLES = int(os.environ.get("RECSYS_FUZZ_EXAMPLES", "150"))
TIMEOUT_S = 10.0
MODEL = "recsys"


@pytest.fixture(scope="module")
def servers(served_data: Path, served_bundle: Path, private_redis: RedisServer) -> Iterator[dict[str, str]]:
    logs = served_data / "logs-fuzz"
    ports = {"predictor": free_port(), "transformer": free_port()}
    predictor = start("inference.predictor_main", logs, served_data, ports["predictor"],
                      "--model_uri", str(served_bundle))  # fmt: skip
    predictor_host = f"127.0.0.1:{ports['predictor']}"
    transformer = start("inference.transformer_main", logs, served_data, ports["transformer"],
                        "--predictor_host", predictor_host, "--store_url", private_redis.url,
                        "--bundle", str(served_bundle),
                        "--exposure_dir", str(served_data / "exposures-fuzz"))  # fmt: skip
    urls = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    try:
        for name, proc in (("predictor", predictor), ("transformer", transformer)):
            wait_ready(proc, urls[name], logs / f"{proc.args[2]}-{ports[name]}.log")  # type: ignore[index]
        yield urls
        for name, proc in (("predictor", predictor), ("transformer", transformer)):
            assert proc.poll() is None, f"the {name} died during the fuzzing"
    finally:
        stop(transformer)
        stop(predictor)


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """The status of one infer request; a hang (no answer within TIMEOUT_S) fails."""
    req = urllib.request.Request(f"http://{url}/v2/models/{MODEL}/infer", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code
    except TimeoutError as e:
        raise AssertionError(f"no answer within {TIMEOUT_S} s to {body[:300]!r}") from e


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
NAMES = st.sampled_from(["user_id", "k", "scene", "exclude", "features", "shared_features", "x", ""])
DATATYPES = st.sampled_from(
    ["BYTES", "INT32", "INT64", "FP32", "FP64", "BOOL", "bytes", "UINT8", "FP16", "X"]
)
SHAPES = st.lists(st.integers(-3, 400), max_size=3) | JSON


@st.composite
def tensors(draw: st.DrawFn) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": draw(NAMES | JSON), "datatype": draw(DATATYPES | JSON),
                              "shape": draw(SHAPES)}  # fmt: skip
    if draw(st.booleans()):
        tensor["data"] = draw(
            st.lists(st.text(max_size=8) | st.integers() | st.floats() | JSON, max_size=6) | JSON
        )
    if draw(st.booleans()):
        tensor["parameters"] = draw(
            JSON | st.fixed_dictionaries({"binary_data_size": st.integers(-5, 10**9)})
        )
    return tensor


@st.composite
def v2_bodies(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A v2 request: JSON, or a JSON header followed by binary tensor bytes."""
    body: dict[str, Any] = {"inputs": draw(st.lists(tensors(), max_size=4) | JSON)}
    for key in ("id", "parameters", "outputs"):
        if draw(st.booleans()):
            body[key] = draw(JSON)
    head = json.dumps(body).encode()
    kind = draw(st.sampled_from(["json", "binary", "no-type", "garbage"]))
    if kind == "json":
        return head, {"Content-Type": "application/json"}
    if kind == "no-type":  # as tritonclient.http sends JSON
        return head, {}
    if kind == "garbage":
        return draw(st.binary(max_size=200)), {"Content-Type": draw(st.sampled_from(
            ["application/json", "application/octet-stream", "text/plain"]))}  # fmt: skip
    rows = draw(st.integers(0, 8))
    payload = b"".join(struct.pack("<f", draw(st.floats(width=32))) for _ in range(rows))
    length = draw(st.integers(-2, len(head) + 10) | st.just(len(head)))
    return head + payload, {"Content-Type": "application/octet-stream",
                            "Inference-Header-Content-Length": str(length)}  # fmt: skip


@pytest.mark.parametrize("server", ["transformer", "predictor"])
def test_v2_bodies_never_get_a_5xx_or_a_hang(servers: dict[str, str], server: str) -> None:
    statuses: dict[int, int] = {}

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(request=v2_bodies())
    def fuzz(request: tuple[bytes, dict[str, str]]) -> None:
        body, headers = request
        status = post(servers[server], body, headers)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, f"{status} for {body[:300]!r} {headers}"

    fuzz()
    assert sum(statuses.values()) >= FUZZ_EXAMPLES // 2 and set(statuses) - {200} <= set(range(400, 500))
    assert_still_serving(servers)


def test_every_openapi_operation_never_gets_a_5xx_or_a_hang(servers: dict[str, str]) -> None:
    import schemathesis

    failures: list[str] = []
    calls = 0
    for name, url in servers.items():
        schema = schemathesis.openapi.from_url(f"http://{url}/openapi.json")
        operations = [r.ok() for r in schema.get_all_operations()]
        assert any(op.path.endswith("/infer") for op in operations), f"{name}: no infer in its OpenAPI"
        for operation in operations:
            if "/repository/" not in operation.path:
                calls += fuzz_operation(name, url, operation, failures)
    assert not failures, "\n".join(failures[:20])
    assert calls > 50
    assert_still_serving(servers)


def fuzz_operation(name: str, url: str, operation: Any, failures: list[str]) -> int:
    """Calls of one operation by schemathesis' cases; 5xx answers and errors go to ``failures``."""
    calls = 0

    @settings(max_examples=max(5, FUZZ_EXAMPLES // 10), deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy())
    def fuzz(case: Any) -> None:
        nonlocal calls
        try:
            response = case.call(base_url=f"http://{url}", timeout=TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - a hang or a dropped connection is a finding
            failures.append(f"{name} {operation.method.upper()} {operation.path}: {e!r}")
            return
        calls += 1
        if response.status_code >= 500:
            failures.append(f"{name} {operation.method.upper()} {case.formatted_path}: "
                            f"{response.status_code} {response.text[:200]}")  # fmt: skip

    fuzz()
    return calls


def assert_still_serving(servers: dict[str, str]) -> None:
    body = json.dumps(
        {"inputs": [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["u000001"]}]}
    )
    url = f"http://{servers['transformer']}/v2/models/{MODEL}/infer"
    req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
        answer = json.loads(resp.read())
    level = next(o for o in answer["outputs"] if o["name"] == "degrade_level")["data"][0]
    assert level == 0, answer  # the predictor still scores


def test_what_the_fuzzing_found_is_a_400_naming_the_problem(servers: dict[str, str]) -> None:
    """Regressions of the findings: a datatype that is not a string was a 500 (unhashable), a
    model version a 501 (KServe's NotImplementedError)."""
    body = json.dumps(
        {"inputs": [{"name": "user_id", "datatype": [], "shape": [1], "data": ["u1"]}]}
    ).encode()
    for url in servers.values():
        req = urllib.request.Request(f"http://{url}/v2/models/{MODEL}/infer", data=body,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=TIMEOUT_S)
        assert e.value.code == 400 and "datatype [] is not one of" in e.value.read().decode()
        for path in (f"/v2/models/{MODEL}/versions/7", f"/v2/models/{MODEL}/versions/7/ready"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"http://{url}{path}", timeout=TIMEOUT_S)
            assert e.value.code == 400 and "omit the version" in e.value.read().decode(), path
