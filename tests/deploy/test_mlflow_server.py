"""The chart's MLflow tracking server, run here with the arguments the chart gives it.

The container's command is the real ``mlflow server`` of the project's environment (the image
holds the same installed project); only the volume path and the port are swapped for a temporary
directory and a free port. Then the registry is used through the Host header the transformer and
the predictor will send (their MLFLOW_TRACKING_URI), and a foreign Host is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.chart import find, objects, render
from tests.serving_helpers import free_port


def call(port: int, host: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers={"Host": host})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, json.loads(text) if text.startswith(b"{") else {}
    except urllib.error.HTTPError as e:
        return e.code, {}
    except urllib.error.URLError:  # not listening yet
        return 0, {}


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return objects(render("mlflow.enabled=true"))


@pytest.fixture(scope="module")
def server(docs: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    (container,) = find(docs, "Deployment", "recsys-mlflow")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["mlflow", "server"]
    volume = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    args = []
    for arg in container["args"]:
        arg = arg.replace("=/mlflow", f"={volume}").replace("sqlite:////mlflow", f"sqlite:///{volume}")
        args.append({"--port=5000": f"--port={port}", "--host=0.0.0.0": "--host=127.0.0.1"}.get(arg, arg))
    mlflow = Path(sys.executable).with_name("mlflow")
    log = (volume / "server.log").open("wb")
    env = {
        e["name"]: e["value"].replace("sqlite:////mlflow", f"sqlite:///{volume}") for e in container["env"]
    }
    assert env["MLFLOW_BACKEND_STORE_URI"] == f"sqlite:///{volume}/mlflow.db"  # not an argument
    proc = subprocess.Popen([str(mlflow), "server", *args], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **env})  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while call(port, "localhost", "/health")[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(volume / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_both_servers_point_at_the_releases_mlflow(docs: list[dict[str, Any]]) -> None:
    spec = find(docs, "InferenceService", "recsys")["spec"]
    for component in (spec["predictor"], spec["transformer"]):
        env = {e["name"]: e.get("value") for e in component["containers"][0]["env"]}
        assert env["MLFLOW_TRACKING_URI"] == "http://recsys-mlflow.recsys.svc.cluster.local:5000"
    find(docs, "Service", "recsys-mlflow")


def test_the_registry_answers_the_servers_host_and_refuses_others(
    docs: list[dict[str, Any]], server: int
) -> None:
    spec = find(docs, "InferenceService", "recsys")["spec"]
    env = {e["name"]: e.get("value") for e in spec["transformer"]["containers"][0]["env"]}
    host = urlsplit(env["MLFLOW_TRACKING_URI"]).netloc  # what the servers' MLflow client sends
    status, body = call(server, host, "/api/2.0/mlflow/registered-models/create", {"name": "recsys-ranker"})
    assert status == 200 and body["registered_model"]["name"] == "recsys-ranker"
    status, body = call(
        server, "recsys-mlflow:5000", "/api/2.0/mlflow/registered-models/get?name=recsys-ranker"
    )
    assert status == 200 and body["registered_model"]["name"] == "recsys-ranker"
    # DNS rebinding protection: a Host that is not this Service is refused
    assert call(server, "evil.example", "/api/2.0/mlflow/registered-models/get?name=recsys-ranker")[0] == 403
    # kubelet probes come with the pod IP as Host: /health must still answer
    assert call(server, "10.1.2.3:5000", "/health")[0] == 200
