"""The model registry over MLflow: bundles as model versions, champion/challenger aliases, rollback.

Storage (all in the MLflow registry, nothing on local disk):

- a version's ``source`` is the run artifact ``bundle/`` (the bundle directory as logged to the
  run); its tags hold ``bundle_version`` and ``metric.<name>`` (the evaluation it was judged on);
- aliases: ``challenger`` moves to every newly registered version; ``champion`` moves only through
  ``promote_if_better`` or ``rollback``;
- the registered-model tag ``champion_history`` is a JSON list of versions, oldest first: every
  promotion that replaces a champion pushes the replaced one, every rollback pops the last one
  back into ``champion``. Rollback is therefore an undo: repeated rollbacks walk back through
  earlier champions, and a promotion after a rollback pushes the restored champion again (what
  was undone is not redone). Version tags ``previous_champion``, ``promoted_at`` and
  ``rolled_back_at`` record the same events for ``recsys model list``.

Read-modify-write of ``champion_history`` is not atomic: promotions of one model are expected to
run one at a time (one training pipeline per model name).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recsys.errors import ConfigError, ModelRegistryError
from recsys.models.tracking import (
    DEFAULT_EXPERIMENT,
    METRIC_PREFIX,
    ModelVersionInfo,
    PromotionDecision,
    download_dir,
    ensure_experiment,
    get_or_none,
    log_run,
    mlflow_errors,
    now_tag,
    parse_history,
    quiet_mlflow,
    sqlite_artifact_root,
    version_info,
)
from recsys.redaction import redact

DEFAULT_MODEL_NAME = "recsys-ranker"
CHAMPION, CHALLENGER = "champion", "challenger"
BUNDLE_ARTIFACT = "bundle"
HISTORY_TAG = "champion_history"
# bounds the registered-model tag; nobody rolls back 200 promotions
_HISTORY_LIMIT = 200


def judge(
    metric: str,
    value: float,
    champ: ModelVersionInfo | None,
    champ_value: float | None,
    higher_is_better: bool,
    tolerance: float,
    force: bool,
) -> tuple[bool, str]:
    """(promote?, why) for a candidate scoring ``value`` against the champion's ``champ_value``."""
    if force:
        return True, "forced promotion"
    if champ is None:
        return True, "no champion yet"
    if math.isnan(value):
        return False, f"{metric} of the candidate is NaN"
    if champ_value is None:
        return False, f"champion v{champ.version} has no {metric!r} to compare with"
    if math.isnan(champ_value):
        return True, f"champion v{champ.version} has {metric} NaN"
    op = ">=" if higher_is_better else "<="
    bound = champ_value - tolerance if higher_is_better else champ_value + tolerance
    if value >= bound if higher_is_better else value <= bound:
        return True, f"{metric} {value:.6g} {op} {bound:.6g} (champion v{champ.version}: {champ_value:.6g})"
    return False, (
        f"{metric} {value:.6g} is worse than champion v{champ.version}'s {champ_value:.6g}"
        f" (needs {op} {bound:.6g})"
    )


class ModelRegistry:
    """One registered model (default ``recsys-ranker``) in one MLflow tracking/registry store."""

    def __init__(
        self,
        tracking_uri: str,
        model_name: str = DEFAULT_MODEL_NAME,
        artifact_root: Path | None = None,
        experiment_name: str = DEFAULT_EXPERIMENT,
    ) -> None:
        from mlflow import MlflowClient

        if not model_name or "'" in model_name:
            # the name goes into a search filter string quoted with '
            raise ConfigError(f"model name {model_name!r}: must be non-empty and contain no quote")
        quiet_mlflow()
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.experiment_name = experiment_name
        self.artifact_root = artifact_root or sqlite_artifact_root(tracking_uri)
        self._experiment_id: str | None = None
        with mlflow_errors(f"cannot open MLflow store {redact(tracking_uri)}"):
            # the registry lives in the same store: never fall back to MLflow's global default
            self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # -- runs and registration ------------------------------------------------------------

    def log_run(
        self,
        *,
        run_name: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        artifacts: Mapping[str, Path],
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Log one finished run and return its MLflow run id."""
        if self._experiment_id is None:
            self._experiment_id = ensure_experiment(self.client, self.experiment_name, self.artifact_root)
        return log_run(
            self.client,
            self._experiment_id,
            run_name=run_name,
            params=params,
            metrics=metrics,
            artifacts=artifacts,
            tags=tags or {},
        )

    def register(
        self, *, run_id: str, bundle_dir: Path, bundle_version: str, metrics: Mapping[str, float]
    ) -> ModelVersionInfo:
        """Log the bundle to the run as ``bundle/`` and register it as a new version (challenger).

        A plain model version whose source is the run artifact, not an MLflow 3 "logged model":
        the bundle is a directory of our own format, not an MLflow flavor, and a run-artifact
        source works the same on a SQLite store and behind a tracking server.
        """
        if not bundle_dir.is_dir():
            raise ModelRegistryError(f"bundle {bundle_dir} is not a directory")
        name = self.model_name
        with mlflow_errors(f"cannot register bundle {bundle_version} as {name!r}"):
            run = self.client.get_run(run_id)
            self.client.log_artifacts(run_id, str(bundle_dir), BUNDLE_ARTIFACT)
            if self._registered() is None:
                self.client.create_registered_model(name)
            tags = {"bundle_version": bundle_version}
            tags.update({f"{METRIC_PREFIX}{k}": repr(float(v)) for k, v in metrics.items() if v is not None})
            mv = self.client.create_model_version(
                name, source=f"{run.info.artifact_uri}/{BUNDLE_ARTIFACT}", run_id=run_id, tags=tags
            )
            self.client.set_registered_model_alias(name, CHALLENGER, str(mv.version))
        return self.resolve(str(mv.version))

    # -- champion / challenger ------------------------------------------------------------

    def promote_if_better(
        self,
        version: str,
        *,
        metric: str,
        higher_is_better: bool = True,
        tolerance: float = 0.0,
        force: bool = False,
    ) -> PromotionDecision:
        """Make ``version`` the champion if it is at least as good as the current one.

        "At least as good" is ``candidate >= champion - tolerance`` (or ``<= champion + tolerance``
        when lower is better). A NaN candidate never wins; a champion without the metric is not
        comparable and blocks promotion unless ``force``. ``version`` may also be an alias.
        """
        if not tolerance >= 0:
            raise ConfigError(f"promotion tolerance: {tolerance} must be >= 0")
        cand = self.resolve(version)
        value = self._metric(cand, metric)
        if value is None:
            raise ModelRegistryError(
                f"{self.model_name} v{cand.version} has no metric {metric!r}: cannot decide promotion"
            )
        aliases, history = self._state()
        champ = self.resolve(aliases[CHAMPION]) if CHAMPION in aliases else None
        champ_value = self._metric(champ, metric) if champ else None
        if champ is not None and champ.version == cand.version:
            promoted, reason = True, f"v{cand.version} is already the champion; nothing changed"
        else:
            promoted, reason = judge(metric, value, champ, champ_value, higher_is_better, tolerance, force)
            with mlflow_errors(f"cannot record the decision on {self.model_name} v{cand.version}"):
                # kept on the version so that `recsys model list` shows why a challenger stayed one
                verdict = f"{'promoted' if promoted else 'rejected'}: {reason}"
                self.client.set_model_version_tag(self.model_name, cand.version, "promotion", verdict)
            if promoted:
                self._set_champion(cand, replaced=champ, history=history)
        return PromotionDecision(
            cand.version, promoted, reason, metric, value, champ.version if champ else None, champ_value
        )

    def _set_champion(
        self, cand: ModelVersionInfo, *, replaced: ModelVersionInfo | None, history: list[str]
    ) -> None:
        name = self.model_name
        with mlflow_errors(f"cannot promote {name} v{cand.version}"):
            if replaced is not None:
                # history before alias: a crash in between leaves the champion on top of its own
                # history, which rollback skips
                self._write_history((history + [replaced.version])[-_HISTORY_LIMIT:])
                self.client.set_model_version_tag(name, cand.version, "previous_champion", replaced.version)
            self.client.set_registered_model_alias(name, CHAMPION, cand.version)
            self.client.set_model_version_tag(name, cand.version, "promoted_at", now_tag())
            if CHALLENGER in cand.aliases:
                # the challenger won: there is no pending challenger until the next registration
                self.client.delete_registered_model_alias(name, CHALLENGER)

    def rollback(self) -> ModelVersionInfo:
        """Move ``champion`` back to the previous champion; raises and changes nothing without one."""
        aliases, history = self._state()
        if CHAMPION not in aliases:
            raise ModelRegistryError(f"no previous champion for {self.model_name}: there is no champion")
        champ = self.resolve(aliases[CHAMPION])
        target: ModelVersionInfo | None = None
        while history and target is None:
            candidate = history.pop()
            # skip what cannot be restored: the champion itself (interrupted promotion), deleted versions
            if candidate != champ.version:
                mv = get_or_none(
                    lambda v=candidate: self.client.get_model_version(self.model_name, v),
                    f"cannot read {self.model_name} v{candidate}",
                )
                target = version_info(self.model_name, mv, {}) if mv else None
        if target is None:
            raise ModelRegistryError(
                f"no previous champion for {self.model_name}: v{champ.version} is the first champion"
            )
        name = self.model_name
        with mlflow_errors(f"cannot roll {name} back to v{target.version}"):
            # alias before history: a crash in between leaves the restored champion on top, skipped above
            self.client.set_registered_model_alias(name, CHAMPION, target.version)
            self._write_history(history)
            self.client.set_model_version_tag(name, champ.version, "rolled_back_at", now_tag())
        return self.resolve(target.version)

    def previous_champions(self) -> list[str]:
        """The champion history, most recent first: what successive rollbacks would restore."""
        return list(reversed(self._state()[1]))

    # -- reading --------------------------------------------------------------------------

    def list_versions(self) -> list[ModelVersionInfo]:
        """Every version, oldest first; empty if nothing was registered yet."""
        with mlflow_errors(f"cannot list versions of {self.model_name}"):
            versions = self.client.search_model_versions(f"name='{self.model_name}'")
        aliases, _ = self._state()
        infos = [version_info(self.model_name, mv, aliases) for mv in versions]
        return sorted(infos, key=lambda v: int(v.version))

    def resolve(self, alias_or_version: str) -> ModelVersionInfo:
        """``champion``, ``challenger`` (any alias, also MLflow's ``latest``) or ``3`` / ``v3``."""
        from mlflow.exceptions import MlflowException

        ref = str(alias_or_version).strip()
        number = ref[1:] if ref[:1] in ("v", "V") and ref[1:].isdigit() else ref
        what = f"cannot resolve {self.model_name}@{ref} in {redact(self.tracking_uri)}"
        try:
            if number.isdigit():
                mv = self.client.get_model_version(self.model_name, number)
            else:
                mv = self.client.get_model_version_by_alias(self.model_name, ref)
        except MlflowException as e:
            # an unset alias is INVALID_PARAMETER_VALUE, an unknown model or version RESOURCE_DOES_NOT_EXIST
            if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise ModelRegistryError(f"{what}: no such model, version or alias") from e
            raise ModelRegistryError(f"{what}: {e.message}") from e
        # a single version comes back with its own aliases; no second round trip for the model
        return version_info(self.model_name, mv, {a: str(mv.version) for a in mv.aliases or ()})

    def download_bundle(self, alias_or_version: str, dest: Path) -> Path:
        """Fetch the version's bundle into ``dest`` (created; must be absent or empty) and return it."""
        info = self.resolve(alias_or_version)
        with mlflow_errors(f"cannot download {self.model_name} v{info.version}"):
            uri = self.client.get_model_version_download_uri(self.model_name, info.version)
        return download_dir(uri, dest, self.tracking_uri)

    # -- helpers --------------------------------------------------------------------------

    def _registered(self) -> Any | None:
        return get_or_none(
            lambda: self.client.get_registered_model(self.model_name), f"cannot read {self.model_name}"
        )

    def _state(self) -> tuple[dict[str, str], list[str]]:
        """(alias -> version, champion history) in one read; empty when nothing is registered yet."""
        model = self._registered()
        if model is None:
            return {}, []
        aliases = {a: str(v) for a, v in (model.aliases or {}).items()}
        return aliases, parse_history((model.tags or {}).get(HISTORY_TAG), self.model_name)

    def _write_history(self, history: list[str]) -> None:
        self.client.set_registered_model_tag(self.model_name, HISTORY_TAG, json.dumps(history))

    def _metric(self, info: ModelVersionInfo, metric: str) -> float | None:
        """The version's evaluation metric: its registration tag, else the run's logged metric."""
        if metric in info.metrics:
            return info.metrics[metric]
        if info.run_id:
            with mlflow_errors(f"cannot read run {info.run_id}"):
                value = self.client.get_run(info.run_id).data.metrics.get(metric)
            return None if value is None else float(value)
        return None
