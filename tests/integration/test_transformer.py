"""The KServe transformer in front of the predictor, both as real processes on loopback ports.

A real bundle, online store (a private Redis, SQLite fallback) and MLflow champion come from
``recsys pipeline run --local`` on a small synthetic marketplace (tests/integration/conftest.py).
Clients: tritonclient.http (binary), KServe's InferenceRESTClient (JSON) and plain GET /recommend.
The predictor is stopped at the end: answers degrade, never fail.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from serving_helpers import (
    MODEL,
    REPO_ROOT,
    RedisServer,
    free_port,
    infer,
    metric,
    start,
    stop,
    text,
    wait_ready,
)
from tritonclient.utils import InferenceServerException

from inference.experiments import Experiments, bucket
from recsys.steps.features import read_features

# -- experiments (no servers) -----------------------------------------------------------------


def test_assignment_is_stable_and_splits_as_configured() -> None:
    exp = Experiments.load(REPO_ROOT / "config" / "experiments.yaml")
    ids = [f"user-{n}" for n in range(20_000)]
    first = [exp.assign(u).name for u in ids]
    again = Experiments.load(REPO_ROOT / "config" / "experiments.yaml")
    assert [again.assign(u).name for u in ids] == first  # deterministic, no state
    counts = Counter(first)
    for name, share in exp.shares.items():
        assert abs(counts[name] / len(ids) - share) <= 0.015, (name, counts)
    assert 0 <= bucket("salt", "u1") < 10_000 and bucket("salt", "u1") != bucket("other", "u1")


# -- processes --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(served_data: Path) -> Path:
    return served_data


@pytest.fixture(scope="module")
def bundle(served_bundle: Path) -> Path:
    return served_bundle


@pytest.fixture(scope="module")
def servers(data_dir: Path, bundle: Path, private_redis: RedisServer) -> Iterator[dict[str, object]]:
    logs = data_dir / "logs"
    pport, tport, tgrpc = free_port(), free_port(), free_port()
    purl, turl = f"127.0.0.1:{pport}", f"127.0.0.1:{tport}"
    # started together; no --bundle: the transformer finds the MLflow champion, the same bundle
    pproc = start("inference.predictor_main", logs, data_dir, pport, "--model_uri", str(bundle))
    tproc = start("inference.transformer_main", logs, data_dir, tport, "--predictor_host", purl,
                  "--store_url", private_redis.url, grpc_port=tgrpc)  # fmt: skip
    try:
        wait_ready(pproc, purl, logs / f"inference.predictor_main-{pport}.log")
        wait_ready(tproc, turl, logs / f"inference.transformer_main-{tport}.log")
        yield {"predictor": pproc, "url": turl, "grpc": f"127.0.0.1:{tgrpc}"}
    finally:
        stop(tproc)
        stop(pproc)


@pytest.fixture(scope="module")
def url(servers: dict[str, object]) -> str:
    return str(servers["url"])


# -- requests ---------------------------------------------------------------------------------


def test_tritonclient_returns_k_ranked_items(url: str, bundle: Path) -> None:
    user = "u000001"
    hist = pd.read_parquet(bundle / "histories.parquet").set_index("user_id")["items"]
    history = set(hist.get(user, "").split("|")) - {""}
    result = infer(url, user, 10, exclude_item_ids=np.array([b"i000048"], dtype=np.object_))
    items = text(result.as_numpy("item_ids"))
    assert len(items) == 10 == len(set(items)) and "i000048" not in items and not history & set(items)
    assert result.as_numpy("scores").dtype == np.float32 and result.as_numpy("scores").shape == (10,)
    assert all(text(result.as_numpy("channels")))
    response = result.get_response()
    assert response["model_version"] == bundle.name
    params = response["parameters"]
    assert params["degrade_level"] == 0 and params["model_version"] == bundle.name
    assert (
        params["experiment_variant"]
        == Experiments.load(REPO_ROOT / "config/experiments.yaml").assign(user).name
    )
    assert text(result.as_numpy("experiment_variant")) == [params["experiment_variant"]]
    # diversity: at most the bundle's category cap per category in the top k (0: no cap)
    cap = json.loads((bundle / "chain.json").read_text())["category_cap"]
    cats = read_features(bundle / "features")[2].set_index("item_id")["item_category_code"]
    assert not cap or max(Counter(cats[i] for i in items).values()) <= cap


def test_the_served_lists_are_the_offline_chains_item_for_item(url: str, bundle: Path) -> None:
    """The transformer (online store, predictor over HTTP) and `recsys recommend` (bundle files,
    ranker in process) run one chain: the same items in the same order, the same scores."""
    from recsys.recommend import BundleRecommender

    offline = BundleRecommender(bundle)
    experiments = Experiments.load(REPO_ROOT / "config" / "experiments.yaml")
    users = sorted(offline.user_ids)[:25] + ["never-seen-user"]
    variants = set()
    for user in users:
        online = infer(url, user, 10)
        variant = experiments.assign(user)
        variants.add(variant.name)
        expected = offline.recommend(user, 10, weights=variant.recall_weights)
        assert text(online.as_numpy("item_ids")) == [r.item_id for r in expected], user
        np.testing.assert_allclose(online.as_numpy("scores"), [r.score for r in expected], rtol=1e-6)
        assert online.get_response()["parameters"]["degrade_level"] == 0
    assert len(variants) > 1  # both experiment variants were compared


def test_kserve_rest_client_json(url: str, bundle: Path) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest
    from kserve.inference_client import RESTConfig

    uid = InferInput("user_id", [1], "BYTES")
    uid.set_data_from_numpy(np.array([b"u000002"], dtype=np.object_), binary_data=False)
    k = InferInput("k", [1], "INT64")
    k.set_data_from_numpy(np.array([5], np.int64), binary_data=False)

    async def call() -> object:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            return await client.infer(f"http://{url}", InferRequest(MODEL, [uid, k]), model_name=MODEL)
        finally:
            await client.close()

    response = asyncio.run(call())
    assert len(response.get_output_by_name("item_ids").data) == 5
    assert len(response.get_output_by_name("scores").as_numpy()) == 5
    assert response.parameters["model_version"] == bundle.name


def test_plain_json_v2_answer_and_its_headers(url: str, bundle: Path) -> None:
    """What curl gets: JSON v2 written by the data plane's own encoder (inference/dataplane.py),
    with the content type and length KServe would otherwise leave out."""
    body = {
        "id": "req-json-1",
        "inputs": [
            {"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["u000002"]},
            {"name": "k", "shape": [1], "datatype": "INT32", "data": [6]},
        ],
    }
    req = urllib.request.Request(
        f"http://{url}/v2/models/{MODEL}/infer", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers["Content-Length"] == str(len(raw))
    answer = json.loads(raw)
    assert answer["id"] == "req-json-1" and answer["model_name"] == MODEL
    assert answer["model_version"] == bundle.name == answer["parameters"]["model_version"]
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert list(outputs) == ["item_ids", "scores", "channels", "experiment_variant", "degrade_level",
                             "model_version"]  # fmt: skip
    items, scores = outputs["item_ids"]["data"], outputs["scores"]["data"]
    assert len(items) == len(scores) == 6 and outputs["item_ids"]["shape"] == [6]
    assert all(isinstance(i, str) for i in items) and all(isinstance(s, float) for s in scores)
    level = {"name": "degrade_level", "shape": [1], "datatype": "INT32", "data": [0]}
    assert outputs["degrade_level"] == level  # no "parameters": null, unlike the pydantic path


def test_int64_user_id_and_rest_route(url: str) -> None:
    assert len(text(infer(url, 42, 3).as_numpy("item_ids"))) == 3
    body = json.loads(
        urllib.request.urlopen(f"http://{url}/recommend?user_id=u000003&k=4", timeout=10).read()
    )
    assert len(body["items"]) == 4 and body["degrade_level"] == 0 and body["experiment_variant"]


def _status(fn: object) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as err:
        fn()  # type: ignore[operator]
    return str(err.value.status()), err.value.message()


def _http_error(url: str, path: str, body: bytes | None, headers: dict[str, str] | None = None
                ) -> tuple[int, str]:  # fmt: skip
    req = urllib.request.Request(f"http://{url}{path}", data=body, method="POST" if body else "GET",
                                 headers=headers or {})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as http_err:
        urllib.request.urlopen(req, timeout=10)
    return http_err.value.code, json.loads(http_err.value.read())["error"]


def test_bad_requests_are_400_naming_the_field_and_counted(url: str) -> None:
    invalid = {"status": "invalid_input", "variant": ""}
    before = metric(url, "recommendation_requests_total", **invalid)
    for k in (0, 501):
        status, message = _status(lambda k=k: infer(url, "u000001", k))
        assert status == "400" and "'k'" in message
    status, message = _status(lambda: infer(url, "u1", None, user_id2=np.array([b"x"], dtype=np.object_)))
    assert status == "400" and "user_id2" in message
    client = triton.InferenceServerClient(url)
    t = triton.InferInput("k", [1], "INT32")
    t.set_data_from_numpy(np.array([5], np.int32))
    status, message = _status(lambda: client.infer(MODEL, [t]))
    assert status == "400" and "'user_id' is missing" in message
    f = triton.InferInput("user_id", [1], "FP32")
    f.set_data_from_numpy(np.array([1.5], np.float32))
    status, message = _status(lambda: client.infer(MODEL, [f]))
    assert status == "400" and "'user_id'" in message and "FP32" in message
    client.close()
    infer_path = f"/v2/models/{MODEL}/infer"
    assert _http_error(url, infer_path, b"{not json")[0] == 400
    status, message = _http_error(url, "/recommend?user_id=u1&k=abc", None)
    assert status == 400 and "'k'" in message
    # a binary payload whose header claims more bytes than were sent
    spec = {"name": "user_id", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 99}}
    head = json.dumps({"inputs": [spec]}).encode()
    status, message = _http_error(url, infer_path, head + b"\x02\x00\x00\x00u1",
                                  {"Inference-Header-Content-Length": str(len(head))})  # fmt: skip
    assert status == 400 and "user_id" in message and "binary_data_size" in message
    # an unknown model is the caller's mistake on /infer (400 naming it), not found elsewhere (404)
    status, message = _http_error(url, "/v2/models/no-such-model/infer", b'{"inputs": []}')
    assert status == 400 and "model_name 'no-such-model'" in message and repr(MODEL) in message
    assert _http_error(url, "/v2/models/no-such-model/ready", None)[0] == 404
    # every one of the 9 rejected requests above is counted (not the 404), none twice
    assert metric(url, "recommendation_requests_total", **invalid) == before + 9


UID = {"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["u1"]}
MALFORMED = [  # the SRE probe's bodies: each was a 500, or served although wrong
    ({"inputs": None}, "inputs"),
    ({"inputs": [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["u1"]}], "parameters": "x"},
     "parameters"),
    ({"inputs": [{**UID, "parameters": ["a"]}]}, "parameters"),
    ({"inputs": [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["u1"]}] * 3}, "given twice"),
    ({"inputs": [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": [None]}]}, "user_id"),
    ({"inputs": [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": [{"a": 1}]}]}, "user_id"),
    ({"inputs": [{"name": "user_id", "shape": [1], "datatype": "INT32", "data": [1.9]}]}, "user_id"),
    ({"inputs": [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": "u1"}]}, "user_id"),
    ({"inputs": [{"name": "user_id", "shape": [1, 1], "datatype": "BYTES", "data": ["u1"]}]}, "expected [1]"),
    ({"inputs": [{"name": "user_id", "shape": [-1], "datatype": "BYTES", "data": ["u1"]}]}, "user_id"),
    ({"inputs": [{"name": "user_id", "shape": [], "datatype": "BYTES", "data": ["u1"]}]}, "user_id"),
    ({"inputs": [{"name": "user_id", "shape": [1], "datatype": "bytes", "data": ["u1"]}]}, "datatype"),
    ({"inputs": [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["u1"]},
                 {"name": "k", "shape": [1], "datatype": "INT32", "data": ["5"]}]}, "'k'"),
    ({"id": 5, "inputs": [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["u1"]}]}, "id"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), MALFORMED)
def test_malformed_v2_bodies_are_400_naming_the_field(url: str, body: dict, field: str) -> None:
    status, message = _http_error(url, f"/v2/models/{MODEL}/infer", json.dumps(body).encode(),
                                  {"Content-Type": "application/json"})  # fmt: skip
    assert status == 400 and field in message, message


def test_an_oversized_body_is_413_before_it_is_sent_and_the_server_keeps_serving(url: str) -> None:
    import socket

    host, port = url.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        # only the head of a 50 MB request: the answer must come without the body
        conn.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     f"\r\nContent-Length: {50 * 1024 * 1024}\r\n\r\n{{".encode())  # fmt: skip
        answer = b""
        while chunk := conn.recv(4096):  # the server closes the connection after its answer
            answer += chunk
    assert answer.decode().startswith("HTTP/1.1 413") and b"at most 8388608" in answer
    assert len(text(infer(url, "u000001", 3).as_numpy("item_ids"))) == 3


def test_metadata_lists_the_inputs_and_outputs(url: str) -> None:
    meta = json.loads(urllib.request.urlopen(f"http://{url}/v2/models/{MODEL}", timeout=10).read())
    inputs = {t["name"]: (t["datatype"], t["shape"]) for t in meta["inputs"]}
    assert inputs["user_id"] == ("BYTES", [1]) and inputs["exclude_item_ids"] == ("BYTES", [-1])
    outputs = {t["name"] for t in meta["outputs"]}
    assert outputs == {"item_ids", "scores", "channels", "experiment_variant", "degrade_level",
                       "model_version"}  # fmt: skip


def test_tritonclient_json_requests_are_understood(url: str) -> None:
    """tritonclient.http sends non-binary inputs as JSON without a Content-Type."""
    client = triton.InferenceServerClient(url)
    uid = triton.InferInput("user_id", [1], "BYTES")
    uid.set_data_from_numpy(np.array([b"u000001"], dtype=np.object_), binary_data=False)
    k = triton.InferInput("k", [1], "INT32")
    k.set_data_from_numpy(np.array([3], np.int32), binary_data=False)
    try:
        wanted = [triton.InferRequestedOutput("item_ids", binary_data=False)]
        answer = client.infer(MODEL, [uid, k], outputs=wanted)
    finally:
        client.close()
    assert len(answer.as_numpy("item_ids")) == 3


def test_unknown_user_gets_popular_items(url: str) -> None:
    result = infer(url, "never-seen-user", 10)
    assert len(text(result.as_numpy("item_ids"))) == 10
    assert all("popular" in c.split(",") for c in text(result.as_numpy("channels")))
    assert result.get_response()["parameters"]["degrade_level"] == 0


def test_exposure_log_one_record_per_request(url: str, data_dir: Path) -> None:
    client = triton.InferenceServerClient(url)
    ids = [f"req-{n}" for n in range(5)]
    for rid in ids:
        uid = triton.InferInput("user_id", [1], "BYTES")
        uid.set_data_from_numpy(np.array([b"u000010"], dtype=np.object_))
        client.infer(MODEL, [uid], request_id=rid)
    client.close()
    records: list[dict] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [
            ln
            for p in (data_dir / "exposures").glob("exposures-*.jsonl")
            for ln in p.read_text().splitlines()
        ]
        records = [r for r in map(json.loads, lines) if r["request_id"] in ids]
        if len(records) == len(ids):
            break
        time.sleep(0.1)
    assert sorted(r["request_id"] for r in records) == ids
    fields = {"user_id", "items", "positions", "scores", "channels", "experiment_variant", "degrade_level",
              "model_version", "latency_ms", "ts"}  # fmt: skip
    for r in records:
        assert fields <= set(r) and len(r["items"]) == 10 and r["positions"] == list(range(10))


def test_in_process_store_down_and_predictor_down(data_dir: Path, bundle: Path) -> None:
    """Redis unreachable -> SQLite fallback (level 1) and no predictor -> recall order (level 2)."""
    from inference.chain import Bundle, Chain, Request
    from inference.experiments import Variant
    from inference.ranker_client import RankerClient
    from recsys.store import FallbackStore, open_store

    async def call() -> object:
        primary = open_store("redis://127.0.0.1:1/0", connect_timeout_s=0.2, retries=0)
        store = FallbackStore(primary, open_store(f"sqlite:///{data_dir / 'online_store.db'}"))
        ranker = RankerClient(f"127.0.0.1:{free_port()}", MODEL, timeout_s=0.2)
        chain = Chain(Bundle(bundle), store, {"champion": ranker})
        try:
            return await chain.recommend(Request("u000001", 10), Variant("control", "champion"))
        finally:
            await chain.close()
            store.close()

    result = asyncio.run(call())
    assert result.degrade_level == 2 and result.reasons == ["store_fallback", "predictor"]  # type: ignore[attr-defined]
    assert len(result.items) == 10 and result.model_version == bundle.name  # type: ignore[attr-defined]


def test_unload_is_not_ready_and_load_restores_rest_and_grpc(servers: dict[str, object], url: str) -> None:
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    def post(path: str) -> int:
        req = urllib.request.Request(f"http://{url}{path}", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status

    def ready() -> int:
        try:
            with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code

    assert post(f"/v2/repository/models/{MODEL}/unload") == 200
    assert ready() == 503
    assert post(f"/v2/repository/models/{MODEL}/load") == 200
    assert ready() == 200
    assert len(text(infer(url, "u000001", 4).as_numpy("item_ids"))) == 4  # REST

    async def grpc() -> list[str]:
        uid = InferInput("user_id", [1], "BYTES")
        uid.set_data_from_numpy(np.array([b"u000001"], dtype=np.object_))
        client = InferenceGRPCClient(str(servers["grpc"]), retries=0)
        try:
            answer = await client.infer(InferRequest(MODEL, [uid]))
        finally:
            await client.close()
        return list(answer.get_output_by_name("item_ids").as_numpy())

    assert len(asyncio.run(grpc())) == 10  # gRPC


def test_predictor_down_degrades_to_recall_order(servers: dict[str, object], url: str) -> None:
    """Last: it stops the predictor."""
    stop(servers["predictor"])  # type: ignore[arg-type]
    for _ in range(3):
        result = infer(url, "u000001", 10)
        assert len(text(result.as_numpy("item_ids"))) == 10
        assert result.get_response()["parameters"]["degrade_level"] == 2
    assert metric(url, "recommendation_degraded_total", level="2", reason="predictor") >= 3


def test_in_process_poller_follows_the_bundle_source(data_dir: Path, bundle: Path, tmp_path: Path) -> None:
    """With poll_seconds, the transformer model checks its bundle source and swaps only on a move."""
    from inference import transformer_metrics as tm
    from inference.chain import Bundle, Chain
    from inference.experiments import Experiments
    from inference.ranker_client import RankerClient
    from inference.transformer import RecommenderModel
    from recsys.store import open_store

    store = open_store(f"sqlite:///{data_dir / 'online_store.db'}")
    chain = Chain(Bundle(bundle), store, {"champion": RankerClient(f"127.0.0.1:{free_port()}", MODEL)})
    moved = tmp_path / "moved"
    moved.symlink_to(bundle)  # the same bundle under another path: the source "moved"
    source = [bundle]
    model = RecommenderModel(MODEL, chain, Experiments.single(), None, lambda: source[0], poll_seconds=0.05)

    def count(result: str) -> float:
        return tm.RELOADS.labels(result=result)._value.get()

    unchanged, swapped = count("unchanged"), count("swapped")
    model.start()
    model.start()  # a second start() does not add a poller
    try:
        deadline = time.monotonic() + 10
        while count("unchanged") < unchanged + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count("unchanged") >= unchanged + 2 and count("swapped") == swapped
        first = chain.bundle
        source[0] = Path(str(moved))
        # a symlink to the same directory resolves to it: still unchanged
        time.sleep(0.3)
        assert chain.bundle is first and count("swapped") == swapped
        other = tmp_path / "copy"
        shutil.copytree(bundle, other)
        source[0] = other
        while count("swapped") == swapped and time.monotonic() < deadline + 20:
            time.sleep(0.05)
        assert count("swapped") == swapped + 1 and chain.bundle.path == other
    finally:
        model.stop()
        store.close()
