"""The model registry against real MLflow: a SQLite store in tmp_path and a real tracking server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from recsys.errors import ModelRegistryError
from recsys.models.registry import ModelRegistry
from recsys.models.tracking import tracking_uri

METRIC = "ndcg_at_20"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # one SQLite store per module: creating its schema costs ~2 s; tests differ by model name
    return tmp_path_factory.mktemp("mlflow-data")


@pytest.fixture
def registry(store_dir: Path) -> ModelRegistry:
    return ModelRegistry(tracking_uri(store_dir, None), model_name=f"ranker-{uuid.uuid4().hex[:8]}")


def _bundle(root: Path, version: str) -> Path:
    bundle = root / "bundles" / version
    (bundle / "features").mkdir(parents=True)
    (bundle / "features" / "items.parquet").write_bytes(os.urandom(256))
    (bundle / "manifest.json").write_text(f'{{"version": "{version}"}}\n')
    return bundle


def _add(reg: ModelRegistry, root: Path, version: str, ndcg: float) -> str:
    bundle = _bundle(root, version)
    run_id = reg.log_run(
        run_name=version,
        params={"model": "lightgbm", "window_days": [7, 30]},
        metrics={METRIC: ndcg, "recall_at_50": 0.5},
        artifacts={"quality": bundle / "manifest.json"},
        tags={"bundle_version": version},
    )
    return reg.register(
        run_id=run_id, bundle_dir=bundle, bundle_version=version, metrics={METRIC: ndcg}
    ).version


def _aliases(reg: ModelRegistry) -> dict[str, tuple[str, ...]]:
    return {v.version: v.aliases for v in reg.list_versions()}


def _promote_rollback_flow(reg: ModelRegistry, root: Path) -> None:
    """The whole champion/challenger life cycle; shared by the SQLite and the server tests."""
    v1 = _add(reg, root, "b1", 0.30)
    assert reg.resolve("challenger").version == v1
    first = reg.promote_if_better(v1, metric=METRIC)
    assert first.promoted and first.reason == "no champion yet" and first.champion_value is None
    assert _aliases(reg) == {v1: ("champion",)}

    v2 = _add(reg, root, "b2", 0.25)
    worse = reg.promote_if_better(v2, metric=METRIC)
    assert not worse.promoted
    assert (worse.candidate_value, worse.champion_version, worse.champion_value) == (0.25, v1, 0.30)
    assert "worse than champion" in worse.reason
    assert _aliases(reg) == {v1: ("champion",), v2: ("challenger",)}
    assert reg.resolve(v2).tags["promotion"].startswith("rejected: ")

    v3 = _add(reg, root, "b3", 0.35)
    better = reg.promote_if_better("challenger", metric=METRIC)
    assert better.promoted and better.version == v3 and better.champion_version == v1
    assert reg.resolve("champion").tags["previous_champion"] == v1
    assert reg.previous_champions() == [v1]
    assert _aliases(reg) == {v1: (), v2: (), v3: ("champion",)}

    restored = reg.rollback()
    assert restored.version == v1 and restored.aliases == ("champion",)
    assert reg.previous_champions() == []
    assert "rolled_back_at" in reg.resolve(v3).tags

    before = _aliases(reg)
    with pytest.raises(ModelRegistryError, match="no previous champion"):
        reg.rollback()
    assert _aliases(reg) == before and reg.resolve("champion").version == v1


def test_promote_and_rollback_on_sqlite(registry: ModelRegistry, tmp_path: Path) -> None:
    _promote_rollback_flow(registry, tmp_path)


def test_rollbacks_walk_back_and_promotion_after_rollback_continues(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    v1, v2, v3 = (_add(registry, tmp_path, f"b{i}", 0.1 * i) for i in (1, 2, 3))
    for v in (v1, v2, v3):
        assert registry.promote_if_better(v, metric=METRIC).promoted
    assert registry.previous_champions() == [v2, v1]
    assert registry.rollback().version == v2
    # a promotion after a rollback pushes the restored champion; the undone v3 is not redone
    v4 = _add(registry, tmp_path, "b4", 0.4)
    assert registry.promote_if_better(v4, metric=METRIC).champion_version == v2
    assert registry.previous_champions() == [v2, v1]
    assert [registry.rollback().version for _ in range(2)] == [v2, v1]
    with pytest.raises(ModelRegistryError, match="no previous champion"):
        registry.rollback()


def test_direction_tolerance_and_idempotence(registry: ModelRegistry, tmp_path: Path) -> None:
    v1 = _add(registry, tmp_path, "b1", 0.300)
    registry.promote_if_better(v1, metric=METRIC)
    v2 = _add(registry, tmp_path, "b2", 0.295)
    assert not registry.promote_if_better(v2, metric=METRIC).promoted
    assert registry.promote_if_better(v2, metric=METRIC, tolerance=0.01).promoted
    # lower is better (a loss): 0.30 is not <= 0.295
    assert not registry.promote_if_better(v1, metric=METRIC, higher_is_better=False).promoted
    again = registry.promote_if_better(v2, metric=METRIC)
    assert again.promoted and "already the champion" in again.reason
    assert registry.previous_champions() == [v1]
    with pytest.raises(ModelRegistryError, match="no metric 'map_at_10'"):
        registry.promote_if_better(v2, metric="map_at_10")


def test_rollback_without_champion_and_unknown_versions(registry: ModelRegistry, tmp_path: Path) -> None:
    with pytest.raises(ModelRegistryError, match="no previous champion"):
        registry.rollback()
    assert registry.list_versions() == []
    v1 = _add(registry, tmp_path, "b1", 0.3)
    with pytest.raises(ModelRegistryError, match="no previous champion"):
        registry.rollback()
    assert _aliases(registry) == {v1: ("challenger",)}
    for ref in ("champion", "42"):
        with pytest.raises(ModelRegistryError, match="no such model, version or alias"):
            registry.resolve(ref)


def test_list_versions_and_run_contents(registry: ModelRegistry, tmp_path: Path) -> None:
    v1 = _add(registry, tmp_path, "b1", 0.3)
    registry.promote_if_better(v1, metric=METRIC)
    _add(registry, tmp_path, "b2", 0.2)
    listed = registry.list_versions()
    assert [(v.version, v.aliases, v.bundle_version) for v in listed] == [
        ("1", ("champion",), "b1"),
        ("2", ("challenger",), "b2"),
    ]
    assert listed[0].metrics == {METRIC: 0.3} and listed[0].run_id and listed[0].created_at.year >= 2024
    assert listed[1].to_dict()["aliases"] == ["challenger"]
    run = registry.client.get_run(listed[0].run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "b1"
    assert run.data.params == {"model": "lightgbm", "window_days": "[7, 30]"}
    assert run.data.metrics == {METRIC: 0.3, "recall_at_50": 0.5}
    paths = {a.path for a in registry.client.list_artifacts(listed[0].run_id)}
    assert paths == {"bundle", "quality"}


def test_download_bundle_returns_the_same_files(registry: ModelRegistry, tmp_path: Path) -> None:
    v1 = _add(registry, tmp_path / "src", "b1", 0.3)
    registry.promote_if_better(v1, metric=METRIC)
    got = registry.download_bundle("champion", tmp_path / "serving" / "b1")
    assert got == tmp_path / "serving" / "b1"
    assert _tree(got) == _tree(tmp_path / "src" / "bundles" / "b1")
    assert not list((tmp_path / "serving").glob(".*"))  # no staging left behind
    with pytest.raises(ModelRegistryError, match="not empty"):
        registry.download_bundle("champion", got)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tracking_uri_default_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    default = tracking_uri(data, None)
    assert default == f"sqlite:///{data.resolve()}/mlflow/mlflow.db"
    assert (data / "mlflow" / "artifacts").is_dir()

    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{elsewhere}")
    other = tmp_path / "other-data"
    uri = tracking_uri(other, os.environ.get("MLFLOW_TRACKING_URI"))
    assert uri == f"sqlite:///{elsewhere}"
    reg = ModelRegistry(uri)
    reg.log_run(run_name="r", params={}, metrics={METRIC: 0.1}, artifacts={"b": _bundle(tmp_path, "b")})
    # the run went to the env store, its artifacts beside that database; nothing under data_dir
    assert elsewhere.exists() and any((tmp_path / "artifacts").rglob("manifest.json"))
    assert not other.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` (SQLite backend, proxied artifacts) on a free loopback port."""
    port = _free_port()
    log_path = tmp_path / "mlflow-server.log"
    cmd = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(tmp_path / "server-artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        # its own process group: `mlflow server` starts uvicorn and a job runner as children
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # the GenAI job runner is one more process importing MLflow at start-up; nothing here uses it
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_promote_and_rollback_through_a_tracking_server(
    mlflow_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = ModelRegistry(tracking_uri(tmp_path / "unused", mlflow_server))
    assert reg.artifact_root is None  # the server's --artifacts-destination decides
    _promote_rollback_flow(reg, tmp_path)
    champion = reg.resolve("champion")
    assert champion.source.startswith("mlflow-artifacts:/")
    got = reg.download_bundle("champion", tmp_path / "served")
    assert _tree(got) == _tree(tmp_path / "bundles" / champion.bundle_version)
    assert any((tmp_path / "server-artifacts").rglob("manifest.json"))
    assert "View run" not in capsys.readouterr().out  # MLflow's run-URL banner stays off stdout
