"""The KServe predictor as a real process on loopback ports.

Clients: tritonclient.http (binary tensors both ways) and KServe's InferenceRESTClient (JSON).
Bundles are tiny LightGBM rankers trained here on random data (96 features, like production);
nothing depends on data/bundles. Reloads run under continuous traffic: no request may fail and
every response must carry the scores of the version it reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from serving_helpers import free_port, metric, start, stop, wait_ready
from tritonclient.utils import InferenceServerException

from recsys.models.registry import ModelRegistry
from recsys.models.tracking import tracking_uri
from recsys.ranking.config import RankingConfig
from recsys.ranking.model import Ranker, load_ranker, save_ranker
from recsys.ranking.trainer import RankingSet, train_ranker

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "recsys"
N_FEATURES, SLATE = 96, 10
FEATURE_NAMES = [f"f{i:02d}" for i in range(N_FEATURES)]
SCHEMA = "test-schema-96"


# -- bundles ----------------------------------------------------------------------------------


def _ranking_set(rng: np.random.Generator, slates: int) -> RankingSet:
    X = rng.normal(size=(slates * SLATE, N_FEATURES)).astype(np.float32)
    utility = 1.5 * X[:, 0] - X[:, 1] + 0.8 * X[:, 2] * (X[:, 3] > 0)
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-(2 * utility - 1)))).astype(np.float32)
    return RankingSet(X, y, np.full(slates, SLATE))


def make_bundle(path: Path, version: str, seed: int, trees: int) -> Path:
    rng = np.random.default_rng(seed)
    train, valid = _ranking_set(rng, 150), _ranking_set(rng, 50)
    cfg = RankingConfig(
        objective="binary", n_estimators=trees, early_stopping_rounds=0, num_leaves=8, min_child_samples=10
    )
    trained = train_ranker(train, valid, FEATURE_NAMES, cfg)
    save_ranker(trained, path / "ranker", schema_hash=SCHEMA, parity_rows=valid.X, tolerance=1e-5)
    manifest = {"version": version, "schema_hash": SCHEMA, "ranker": {"features": N_FEATURES}}
    (path / "manifest.json").write_text(json.dumps(manifest) + "\n")
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {
        "bundle-a": make_bundle(root / "bundle-a", "bundle-a", seed=1, trees=15),
        "bundle-b": make_bundle(root / "bundle-b", "bundle-b", seed=2, trees=40),
    }


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(300, N_FEATURES)).astype(np.float32)


def copy_bundle(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


# -- the predictor process --------------------------------------------------------------------


@dataclass
class Predictor:
    url: str  # host:port, as tritonclient wants it
    log: Path
    proc: subprocess.Popen[bytes]
    grpc_port: int

    @property
    def http(self) -> str:
        return f"http://{self.url}"

    def post(self, path: str, body: bytes = b"") -> tuple[int, str]:
        req = urllib.request.Request(self.http + path, method="POST", data=body)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        return metric(self.url, name, **labels)


@contextmanager
def predictor(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Predictor]:
    http_port, grpc_port = free_port(), free_port()
    data = Path((env or {}).get("RECSYS_DATA_DIR", tmp / "data"))
    proc = start("inference.predictor_main", tmp, data, http_port, *args, env=env, grpc_port=grpc_port)
    log = tmp / f"inference.predictor_main-{http_port}.log"
    server = Predictor(f"127.0.0.1:{http_port}", log, proc, grpc_port)
    try:
        wait_ready(proc, server.url, server.log, timeout=60)
        yield server
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, Path]) -> Iterator[Predictor]:
    tmp = tmp_path_factory.mktemp("predictor")
    with predictor(tmp, "--model_uri", str(copy_bundle(bundles["bundle-a"], tmp / "serving"))) as srv:
        yield srv


def features_input(X: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput("features", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=True)
    return tensor


def infer(url: str, X: np.ndarray, model: str = MODEL, **params: str) -> triton.InferResult:
    client = triton.InferenceServerClient(url)
    try:
        return client.infer(model, [features_input(X)], parameters=params or None)
    finally:
        client.close()


# -- requests ---------------------------------------------------------------------------------


def test_tritonclient_binary_scores_equal_in_process(
    server: Predictor, bundles: dict[str, Path], X: np.ndarray
) -> None:
    result = infer(server.url, X, schema_hash=SCHEMA)
    expected = load_ranker(bundles["bundle-a"] / "ranker").score(X)
    scores = result.as_numpy("scores")
    assert scores.dtype == np.float32 and scores.shape == (300,)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    assert result.as_numpy("model_version").tolist() == [b"bundle-a"]
    response = result.get_response()
    assert response["model_version"] == "bundle-a"
    assert response["parameters"] == {"model_version": "bundle-a", "schema_hash": SCHEMA, "runtime": "onnx"}
    # binary was asked for (no outputs named): the scores travelled after the JSON header
    assert "data" not in response["outputs"][0]


def test_shared_columns_sent_once_score_the_same(server: Predictor, X: np.ndarray) -> None:
    """``shared_features`` [1, s] + ``features`` [n, d - s] is the matrix with those s columns
    on every row: the transformer's RankerClient sends the user's columns that way."""
    from inference.ranker_client import PredictorError, RankerClient, parse_scores

    rows = X.copy()
    rows[:, :39] = X[0, :39]  # the user's columns: the same on every row
    expected = infer(server.url, rows).as_numpy("scores")
    client = triton.InferenceServerClient(server.url)
    shared = triton.InferInput("shared_features", [1, 39], "FP32")
    shared.set_data_from_numpy(rows[:1, :39], binary_data=True)
    result = client.infer(MODEL, [shared, features_input(np.ascontiguousarray(rows[:, 39:]))])
    np.testing.assert_array_equal(result.as_numpy("scores"), expected)
    # a shared block wider than the model, or rows that do not fill the rest: 400 naming the tensor
    too_wide = triton.InferInput("shared_features", [1, 97], "FP32")
    too_wide.set_data_from_numpy(np.zeros((1, 97), np.float32), binary_data=True)
    with pytest.raises(InferenceServerException) as err:
        client.infer(MODEL, [too_wide, features_input(rows[:, :1])])
    assert err.value.status() == "400" and "'shared_features'" in err.value.message()
    with pytest.raises(InferenceServerException) as err:
        client.infer(MODEL, [shared, features_input(np.ascontiguousarray(rows[:, 40:]))])
    message = err.value.message()
    assert err.value.status() == "400" and "[300, 56]" in message and "[n, 57]" in message
    client.close()

    async def ranker_client() -> tuple[np.ndarray, bool | None, bool | None]:
        ranker = RankerClient(server.url, MODEL, timeout_s=5)
        try:
            scores, version = await ranker.score(rows, SCHEMA, shared=39, request_id="req-42")
            asked = ranker._takes_shared  # the metadata lists shared_features
            # the predictor answers with the caller's id, and the client checks it
            one = {
                "name": "features",
                "shape": [1, rows.shape[1]],
                "datatype": "FP32",
                "data": rows[0].tolist(),
            }
            body = orjson.dumps({"id": "req-43", "inputs": [one]})
            json_type = {"Content-Type": "application/json"}
            answer = await ranker._client().request("POST", f"/v2/models/{MODEL}/infer", body, json_type)
            assert orjson.loads(answer.body)["id"] == "req-43"
            with pytest.raises(PredictorError, match="answer to request 'req-43' received for 'req-44'"):
                parse_scores(answer.body, None, 1, "req-44")
            with pytest.raises(Exception, match="HTTP 400"):
                await ranker.score(rows, "another-schema", shared=39)
            return scores, asked, ranker._takes_shared  # a 4xx: ask the metadata again
        finally:
            await ranker.close()

    scores, asked, after_4xx = asyncio.run(ranker_client())
    np.testing.assert_array_equal(scores, expected)
    assert asked is True and after_4xx is None


def test_kserve_rest_client_json(server: Predictor, bundles: dict[str, Path], X: np.ndarray) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest
    from kserve.inference_client import RESTConfig

    rows = X[:20]
    features = InferInput("features", list(rows.shape), "FP32")
    features.set_data_from_numpy(rows, binary_data=False)
    schema = InferInput("schema_hash", [1], "BYTES")
    schema.set_data_from_numpy(np.array([SCHEMA.encode()], dtype=np.object_), binary_data=False)

    async def call() -> object:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            return await client.infer(server.http, InferRequest(MODEL, [features, schema]), model_name=MODEL)
        finally:
            await client.close()

    response = asyncio.run(call())
    scores = response.get_output_by_name("scores").as_numpy()
    expected = load_ranker(bundles["bundle-a"] / "ranker").score(rows)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    assert response.get_output_by_name("model_version").data == ["bundle-a"]
    assert response.parameters["model_version"] == "bundle-a"


def test_wrong_feature_count_is_400_naming_the_tensor(server: Predictor, X: np.ndarray) -> None:
    with pytest.raises(InferenceServerException) as err:
        infer(server.url, X[:, :95])
    assert err.value.status() == "400"
    message = err.value.message()
    assert "'features'" in message and "[300, 95]" in message and "96" in message


def test_schema_mismatch_is_400_and_counted(server: Predictor, X: np.ndarray) -> None:
    before = server.metric("recsys_predictor_schema_mismatches_total", model=MODEL)
    with pytest.raises(InferenceServerException) as err:
        infer(server.url, X, schema_hash="another-schema")
    assert err.value.status() == "400" and "schema mismatch" in err.value.message()
    # the same check through a BYTES input instead of the request parameter
    client = triton.InferenceServerClient(server.url)
    schema = triton.InferInput("schema_hash", [1], "BYTES")
    schema.set_data_from_numpy(np.array([b"another-schema"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as err:
        client.infer(MODEL, [features_input(X), schema])
    client.close()
    assert err.value.status() == "400" and "schema mismatch" in err.value.message()
    assert server.metric("recsys_predictor_schema_mismatches_total", model=MODEL) == before + 2
    assert server.metric("recsys_predictor_predictions_total", model=MODEL, status="schema_mismatch") >= 2


def test_unknown_model_is_400_on_infer_and_counted(server: Predictor, X: np.ndarray) -> None:
    before = server.metric("recsys_predictor_predictions_total", model="", status="invalid_input")
    with pytest.raises(InferenceServerException) as err:
        infer(server.url, X, model="no-such-model")
    assert err.value.status() == "400" and "model_name 'no-such-model'" in err.value.message()
    assert server.metric("recsys_predictor_predictions_total", model="", status="invalid_input") == before + 1
    # not found is what the repository and readiness routes mean
    assert server.post("/v2/repository/models/no-such-model/load")[0] == 404


def test_malformed_body_is_400_and_counted(server: Predictor) -> None:
    invalid = {"model": MODEL, "status": "invalid_input"}
    before = server.metric("recsys_predictor_predictions_total", **invalid)
    status, body = server.post(f"/v2/models/{MODEL}/infer", b"{not json")
    assert status == 400 and "error" in json.loads(body)
    assert server.metric("recsys_predictor_predictions_total", **invalid) == before + 1


def test_grpc_scores_and_invalid_argument(server: Predictor, bundles: dict[str, Path], X: np.ndarray) -> None:
    import grpc
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    async def call(rows: np.ndarray) -> object:
        tensor = InferInput("features", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        client = InferenceGRPCClient(f"127.0.0.1:{server.grpc_port}", retries=0)
        try:
            return await client.infer(InferRequest(MODEL, [tensor]))
        finally:
            await client.close()

    response = asyncio.run(call(X))
    expected = load_ranker(bundles["bundle-a"] / "ranker").score(X)
    np.testing.assert_allclose(response.get_output_by_name("scores").as_numpy(), expected, atol=1e-5)
    assert response.model_version == "bundle-a"
    with pytest.raises(grpc.RpcError) as err:
        asyncio.run(call(X[:, :95]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "features" in err.value.details()


# -- reloads under traffic --------------------------------------------------------------------


@dataclass
class Traffic:
    """Threads sending the same request back to back, each with its own client."""

    url: str
    X: np.ndarray
    threads: int = 2
    results: list[list[tuple[str, np.ndarray]]] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)  # monotonic end time of every success
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self, out: list[tuple[str, np.ndarray]]) -> None:
        client = triton.InferenceServerClient(self.url)
        while not self._stop.is_set():
            try:
                res = client.infer(MODEL, [features_input(self.X)], parameters={"schema_hash": SCHEMA})
                out.append((res.get_response()["model_version"], res.as_numpy("scores")))
                self.finished_at.append(time.monotonic())
            except Exception as e:  # noqa: BLE001 - every failure is what the test counts
                self.errors.append(repr(e))
        client.close()

    @contextmanager
    def running(self) -> Iterator[Traffic]:
        self.results = [[] for _ in range(self.threads)]
        workers = [threading.Thread(target=self._run, args=(out,), daemon=True) for out in self.results]
        for w in workers:
            w.start()
        try:
            yield self
        finally:
            self._stop.set()
            for w in workers:
                w.join(timeout=30)

    def wait_for(self, version: str, per_thread: int = 5, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while any(sum(v == version for v, _ in out) < per_thread for out in self.results):
            assert not self.errors, self.errors[:3]
            assert time.monotonic() < deadline, f"no {version} responses after {timeout} s"
            time.sleep(0.05)


def assert_switched(traffic: Traffic, rankers: dict[str, Ranker], old: str, new: str) -> None:
    """No errors; per thread old* then new* (never back); each response scored by its version."""
    assert traffic.errors == []
    expected = {v: r.score(traffic.X) for v, r in rankers.items()}
    assert not np.allclose(expected[old], expected[new])  # the bundles really differ
    for out in traffic.results:
        versions = [v for v, _ in out]
        first_new = versions.index(new)
        assert set(versions[:first_new]) <= {old} and set(versions[first_new:]) == {new}
        for version, scores in out:
            np.testing.assert_allclose(scores, expected[version], rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def rankers(bundles: dict[str, Path]) -> dict[str, Ranker]:
    return {v: load_ranker(path / "ranker") for v, path in bundles.items()}


def test_load_endpoint_swaps_bundle_under_traffic(
    tmp_path: Path, bundles: dict[str, Path], rankers: dict[str, Ranker], X: np.ndarray
) -> None:
    serving = copy_bundle(bundles["bundle-a"], tmp_path / "serving")
    with predictor(tmp_path, "--model_uri", str(serving)) as srv:
        traffic = Traffic(srv.url, X)
        with traffic.running():
            traffic.wait_for("bundle-a")
            # a load that cannot load (the bundle is gone) fails alone: bundle-a keeps serving
            serving.rename(tmp_path / "previous")
            status, body = srv.post(f"/v2/repository/models/{MODEL}/load")
            assert status == 503 and "still serving bundle-a" in body and "manifest.json" in body
            # replace the bundle the way a deploy would: the new one lands beside it, then renames
            copy_bundle(bundles["bundle-b"], tmp_path / "staged").rename(serving)
            started = time.monotonic()
            for _ in range(5):  # repeated loads: each swaps again while requests are in flight
                assert srv.post(f"/v2/repository/models/{MODEL}/load") == (
                    200,
                    '{"name":"recsys","load":true}',
                )
            ended = time.monotonic()
            traffic.wait_for("bundle-b")
        # the loads ran off the event loop: requests kept being answered while they ran
        assert sum(started < t < ended for t in traffic.finished_at) > 0
        assert_switched(traffic, rankers, "bundle-a", "bundle-b")
        assert srv.metric("recsys_predictor_reloads_total", model=MODEL, result="swapped") == 5
        assert srv.metric("recsys_predictor_reloads_total", model=MODEL, result="failed") == 1
        assert srv.metric("recsys_predictor_predictions_total", model=MODEL, status="error") == 0


def test_polling_follows_a_symlink_swap_lightgbm_runtime(
    tmp_path: Path, bundles: dict[str, Path], X: np.ndarray
) -> None:
    link = tmp_path / "current"
    link.symlink_to(copy_bundle(bundles["bundle-a"], tmp_path / "a"), target_is_directory=True)
    args = ("--model_uri", str(link), "--runtime", "lightgbm", "--poll_seconds", "0.3")
    rankers = {v: load_ranker(p / "ranker", "lightgbm") for v, p in bundles.items()}
    with predictor(tmp_path, *args) as srv:
        traffic = Traffic(srv.url, X, threads=1)
        with traffic.running():
            traffic.wait_for("bundle-a")
            # an atomic symlink swap, as Kubernetes volumes update; no load call: the poller sees it
            tmp_link = tmp_path / "current.new"
            tmp_link.symlink_to(copy_bundle(bundles["bundle-b"], tmp_path / "b"), target_is_directory=True)
            tmp_link.replace(link)
            traffic.wait_for("bundle-b")
        assert_switched(traffic, rankers, "bundle-a", "bundle-b")
        assert infer(srv.url, X[:3]).get_response()["parameters"]["runtime"] == "lightgbm"


def test_registry_champion_reload(
    tmp_path: Path, bundles: dict[str, Path], rankers: dict[str, Ranker], X: np.ndarray
) -> None:
    store = tmp_path / "store"
    uri = tracking_uri(store, None)
    registry = ModelRegistry(uri, model_name="ranker-test")

    def register(version: str) -> str:
        run_id = registry.log_run(run_name=version, params={}, metrics={"ndcg_at_20": 0.5}, artifacts={})
        mv = registry.register(run_id=run_id, bundle_dir=bundles[version], bundle_version=version, metrics={})
        registry.promote_if_better(mv.version, metric="ndcg_at_20", force=True)
        return mv.version

    register("bundle-a")
    # a data dir of its own: the predictor must download the champion's bundle from MLflow
    env = {"MLFLOW_TRACKING_URI": uri, "RECSYS_DATA_DIR": str(tmp_path / "serving-data")}
    with predictor(tmp_path, "--model_uri", "models:/ranker-test@champion", env=env) as srv:
        traffic = Traffic(srv.url, X, threads=1)
        with traffic.running():
            traffic.wait_for("bundle-a")
            register("bundle-b")
            assert srv.post(f"/v2/repository/models/{MODEL}/load")[0] == 200
            traffic.wait_for("bundle-b")
        assert_switched(traffic, rankers, "bundle-a", "bundle-b")
    assert (tmp_path / "serving-data" / "bundles" / "bundle-b" / "manifest.json").exists()


def test_bad_model_uri_exits_with_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "inference.predictor_main", "--model_uri", str(tmp_path / "missing")]
    env = {**os.environ, "RECSYS_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert re.search(r"^recsys-predictor: error: model uri: .*missing", done.stderr, re.M)


def test_unload_makes_it_not_ready_and_load_restores_rest_and_grpc(
    tmp_path: Path, bundles: dict[str, Path], X: np.ndarray
) -> None:
    """The readiness probe must take an unloaded model's pod out of rotation, and a load must
    bring every protocol back (before: ready stayed 200, and REST infer stayed 503 after load)."""
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    async def grpc_scores(port: int) -> np.ndarray:
        tensor = InferInput("features", list(X.shape), "FP32")
        tensor.set_data_from_numpy(X)
        client = InferenceGRPCClient(f"127.0.0.1:{port}", retries=0)
        try:
            return (await client.infer(InferRequest(MODEL, [tensor]))).outputs[0].as_numpy()
        finally:
            await client.close()

    def ready(srv: Predictor) -> int:
        try:
            with urllib.request.urlopen(f"{srv.http}/v2/health/ready", timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code

    with predictor(tmp_path, "--model_uri", str(copy_bundle(bundles["bundle-a"], tmp_path / "b"))) as srv:
        expected = infer(srv.url, X).as_numpy("scores")
        assert srv.post(f"/v2/repository/models/{MODEL}/unload")[0] == 200
        assert ready(srv) == 503
        with pytest.raises(InferenceServerException):
            infer(srv.url, X)
        assert srv.post(f"/v2/repository/models/{MODEL}/load")[0] == 200
        assert ready(srv) == 200
        np.testing.assert_array_equal(infer(srv.url, X).as_numpy("scores"), expected)
        np.testing.assert_allclose(asyncio.run(grpc_scores(srv.grpc_port)), expected, atol=1e-6)
