"""MLflow plumbing: where the store lives, quiet clients, logging a run, the registry's records.

Every pipeline run is one MLflow run (params, metrics, artifacts). Only ``MlflowClient`` is used,
never the fluent ``mlflow.start_run`` API: the fluent API keeps a process-global active run and
tracking URI, which would leak between the pipeline's steps and between tests.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from recsys.errors import ModelRegistryError

DEFAULT_EXPERIMENT = "recsys"
METRIC_PREFIX = "metric."
T = TypeVar("T")
# MLflow rejects a log_batch request with more than 100 params or 900 metrics (1000 entities)
_PARAMS_PER_BATCH, _METRICS_PER_BATCH = 100, 900
# INFO chatter MLflow emits on every fresh client or registration; warnings and errors still pass
_CHATTY_LOGGERS = ("mlflow.store.db.utils", "mlflow.store.model_registry.abstract_store", "alembic")


def tracking_dir(data_dir: Path) -> Path:
    return data_dir.resolve() / "mlflow"


def default_artifact_root(data_dir: Path) -> Path:
    return tracking_dir(data_dir) / "artifacts"


def tracking_uri(data_dir: Path, env_uri: str | None) -> str:
    """``MLFLOW_TRACKING_URI`` (passed in by the caller) wins; else a SQLite store under data_dir.

    The SQLite backend, not MLflow's file store, because the model registry (aliases, version
    tags) needs a database backend and the file store is deprecated in MLflow 3.
    """
    if env_uri and env_uri.strip():
        return env_uri.strip()
    default_artifact_root(data_dir).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{tracking_dir(data_dir) / 'mlflow.db'}"


def sqlite_artifact_root(uri: str) -> Path | None:
    """``<db dir>/artifacts`` for a SQLite store, so that artifacts never land in ``./mlruns``.

    Without an explicit location MLflow puts a new experiment's artifacts under the *current
    directory*; for a server (http) store the server's --artifacts-destination decides instead.
    """
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).resolve().parent / "artifacts"


def quiet_mlflow() -> None:
    """Keep stdout clean: components print machine-read ``recsys-result:`` lines there.

    ``setdefault`` so that an operator who sets these variables still gets what they asked for.
    """
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


@contextmanager
def mlflow_errors(action: str) -> Iterator[None]:
    """Turn an MlflowException (bad name, unreachable server, ...) into one readable RecsysError."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as e:
        raise ModelRegistryError(f"{action}: {e.message}") from e


def get_or_none(call: Callable[[], T], action: str) -> T | None:
    """``call()``, or None when MLflow says the resource does not exist; other failures raise."""
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise ModelRegistryError(f"{action}: {e.message}") from e


def param_value(value: Any) -> str:
    # MLflow params are strings; structured values stay readable (and diffable) as sorted JSON
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def ensure_experiment(client: Any, name: str, artifact_root: Path | None) -> str:
    """The experiment's id, creating it (artifacts under artifact_root) or restoring it if deleted.

    An existing experiment keeps the artifact location it was created with: MLflow fixes it at
    creation time.
    """
    with mlflow_errors(f"cannot open experiment {name!r}"):
        found = client.get_experiment_by_name(name)
        if found is None:
            location = None
            if artifact_root is not None:
                artifact_root.mkdir(parents=True, exist_ok=True)
                location = artifact_root.resolve().as_uri()
            return str(client.create_experiment(name, artifact_location=location))
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return str(found.experiment_id)


def log_run(
    client: Any,
    experiment_id: str,
    *,
    run_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    artifacts: Mapping[str, Path],
    tags: Mapping[str, str],
) -> str:
    """One finished MLflow run; a failure while logging marks the run FAILED and raises.

    ``artifacts`` maps a directory inside the run's artifacts to a local file or directory: a
    directory's contents land under that path, a file lands as ``<path>/<file name>``.
    """
    from mlflow.entities import Metric, Param
    from mlflow.utils.time import get_current_time_millis

    missing = [str(p) for p in artifacts.values() if not Path(p).exists()]
    if missing:
        raise ModelRegistryError(f"run {run_name!r}: artifacts not found: {', '.join(missing)}")
    with mlflow_errors(f"cannot start run {run_name!r}"):
        run = client.create_run(experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
    run_id = str(run.info.run_id)
    now = get_current_time_millis()
    param_list = [Param(str(k), param_value(v)) for k, v in params.items()]
    # None means "not computed": MLflow cannot store it, and 0.0 would lie
    metric_list = [Metric(str(k), float(v), now, 0) for k, v in metrics.items() if v is not None]
    try:
        with mlflow_errors(f"cannot log run {run_name!r} ({run_id})"):
            # one request for the usual run (a round trip matters behind a tracking server)
            batches = max(len(param_list) // _PARAMS_PER_BATCH, len(metric_list) // _METRICS_PER_BATCH) + 1
            for i in range(batches):
                p = param_list[i * _PARAMS_PER_BATCH : (i + 1) * _PARAMS_PER_BATCH]
                m = metric_list[i * _METRICS_PER_BATCH : (i + 1) * _METRICS_PER_BATCH]
                if p or m:
                    client.log_batch(run_id, params=p, metrics=m, synchronous=True)
            for artifact_path, local in artifacts.items():
                local = Path(local)
                if local.is_dir():
                    client.log_artifacts(run_id, str(local), artifact_path or None)
                else:
                    client.log_artifact(run_id, str(local), artifact_path or None)
    except BaseException:
        # the logging error is the one worth reporting, not a second failure while marking the run
        with suppress(Exception):
            client.set_terminated(run_id, status="FAILED")
        raise
    with mlflow_errors(f"cannot finish run {run_id}"):
        client.set_terminated(run_id, status="FINISHED")
    return run_id


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: str
    aliases: tuple[str, ...]
    bundle_version: str | None
    metrics: dict[str, float]
    created_at: datetime  # naive UTC, like every timestamp in the system
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["aliases"] = list(self.aliases)
        out["created_at"] = self.created_at.isoformat()
        return out


@dataclass(frozen=True)
class PromotionDecision:
    version: str
    promoted: bool
    reason: str
    metric: str
    candidate_value: float | None
    champion_version: str | None  # the champion the candidate was compared with
    champion_value: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def utc_from_ms(ms: int | None) -> datetime:
    return datetime.fromtimestamp((ms or 0) / 1000, UTC).replace(tzinfo=None)


def now_tag() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def version_info(name: str, mv: Any, aliases: Mapping[str, str]) -> ModelVersionInfo:
    """Our record of an MLflow ModelVersion; ``aliases`` maps alias -> version for the model."""
    version = str(mv.version)
    tags = dict(mv.tags or {})
    metrics: dict[str, float] = {}
    for key, raw in tags.items():
        if key.startswith(METRIC_PREFIX):
            try:
                metrics[key[len(METRIC_PREFIX) :]] = float(raw)
            except ValueError:
                continue  # a hand-edited tag is not an evaluation result
    return ModelVersionInfo(
        name=name,
        version=version,
        aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
        bundle_version=tags.get("bundle_version"),
        metrics=metrics,
        created_at=utc_from_ms(mv.creation_timestamp),
        run_id=mv.run_id or None,
        source=str(mv.source),
        tags=tags,
    )


def parse_history(raw: str | None, model_name: str) -> list[str]:
    """The ``champion_history`` registered-model tag: a JSON list of versions, oldest first."""
    if not raw:
        return []
    try:
        history = json.loads(raw)
        if not isinstance(history, list):
            raise TypeError("not a list")
    except (ValueError, TypeError) as e:
        raise ModelRegistryError(f"{model_name}: tag champion_history={raw!r} is not a JSON list") from e
    return [str(v) for v in history]


def download_dir(artifact_uri: str, dest: Path, tracking_uri: str) -> Path:
    """Download an artifact directory to ``dest`` (absent or empty) and return ``dest``."""
    import mlflow.artifacts

    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ModelRegistryError(f"cannot download {artifact_uri}: {dest} is not empty")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # download beside dest and move it in whole, so that a half-done download is never a bundle
    staging = dest.parent / f".{dest.name}.download"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        with mlflow_errors(f"cannot download {artifact_uri}"):
            # tracking_uri: a server's mlflow-artifacts:/ URIs resolve against it, not the global one
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=artifact_uri, dst_path=str(staging), tracking_uri=tracking_uri
                )
            )
        if not local.is_dir():
            raise ModelRegistryError(f"{artifact_uri} is a file, not a bundle directory")
        if dest.exists():
            dest.rmdir()
        local.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
