"""Where the predictor's ranker comes from: a local bundle directory or the MLflow registry.

A model URI is either a path (``/mnt/models``, where KServe's storage initializer puts a
``storageUri``; ``file://`` is accepted) or ``models:/<name>@<alias>`` / ``models:/<name>/<version>``,
resolved through the project's registry (``resolve_bundle``: the local copy under
``<data_dir>/bundles/`` when present, else a download there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import ConfigError, PipelineError
from recsys.models.bundles import model_registry, resolve_bundle
from recsys.ranking.model import Ranker, Runtime, load_ranker
from recsys.settings import Settings

MODELS_SCHEME = "models:/"
MANIFEST = "manifest.json"
RUNTIMES: tuple[Runtime, ...] = ("onnx", "lightgbm", "logistic")


@dataclass(frozen=True)
class ServedModel:
    """One loaded bundle. Immutable: a reload builds a new one and swaps the reference."""

    ranker: Ranker
    version: str
    schema_hash: str
    bundle_dir: Path
    fingerprint: str

    @property
    def n_features(self) -> int:
        return len(self.ranker.info["feature_names"])

    def score(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 0:
            # runtimes disagree on empty batches (ONNX accepts them, the logistic fallback may not)
            return np.zeros(0, dtype=np.float32)
        return self.ranker.score(X)


def _manifest(bundle_dir: Path) -> dict[str, Any]:
    path = bundle_dir / MANIFEST
    if not path.is_file():
        raise ConfigError(f"model uri: {bundle_dir} is not a bundle (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PipelineError(f"bundle {bundle_dir}: unreadable {MANIFEST}: {e}") from e
    if not isinstance(manifest, dict) or not manifest.get("version"):
        raise PipelineError(f"bundle {bundle_dir}: {MANIFEST} has no version")
    return manifest


def load_bundle(bundle_dir: Path, runtime: Runtime, fingerprint: str = "") -> ServedModel:
    """Load the bundle's ranker and score one row, so that a broken model never gets swapped in."""
    manifest = _manifest(bundle_dir)
    ranker = load_ranker(bundle_dir / "ranker", runtime)
    declared = manifest.get("schema_hash")
    if declared and str(declared) != ranker.schema_hash:
        raise PipelineError(
            f"bundle {bundle_dir}: manifest schema_hash {declared} differs from the ranker's "
            f"{ranker.schema_hash}"
        )
    served = ServedModel(ranker, str(manifest["version"]), ranker.schema_hash, bundle_dir, fingerprint)
    # the first run also pays ONNX Runtime's lazy allocations: keep them off the first request
    served.score(np.zeros((1, served.n_features), dtype=np.float32))
    return served


class ModelSource:
    """Resolves the configured model URI to a local bundle, and says cheaply whether it moved."""

    def __init__(self, uri: str, settings: Settings) -> None:
        self.uri = uri
        self.settings = settings
        self.path: Path | None = None
        self.registry_name = self.ref = ""
        self._registry: Any = None  # built on first use: opening MLflow costs ~1 s
        if uri.startswith(MODELS_SCHEME):
            rest = uri[len(MODELS_SCHEME) :].strip("/")
            name, sep, ref = rest.partition("@") if "@" in rest else rest.partition("/")
            if not name or not sep or not ref or "/" in ref:
                raise ConfigError(
                    f"model uri {uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>"
                )
            self.registry_name, self.ref = name, ref
        elif "://" in uri and not uri.startswith("file://"):
            raise ConfigError(
                f"model uri {uri!r}: use a local bundle directory (KServe's storageUri downloads to "
                "/mnt/models) or models:/<name>@<alias>"
            )
        else:
            # not resolve(): a symlink swapped to a new bundle (as Kubernetes volumes do) must be seen
            self.path = Path(uri.removeprefix("file://")).expanduser().absolute()

    def fingerprint(self) -> str:
        """Changes when a reload would serve something else: the registry version or the manifest."""
        if self.path is not None:
            manifest = self.path / MANIFEST
            try:
                stat = manifest.stat()
            except OSError as e:
                raise ConfigError(f"model uri: cannot read {manifest}: {e}") from e
            # inode too: a bundle swapped in by rename may keep the old manifest's mtime
            version = _manifest(self.path)["version"]
            return f"{version}:{stat.st_ino}:{stat.st_mtime_ns}"
        if self._registry is None:
            settings = self.settings.model_copy(update={"model_name": self.registry_name})
            self._registry = model_registry(settings)
        info = self._registry.resolve(self.ref)
        return f"v{info.version}:{info.bundle_version}"

    def load(self, runtime: Runtime) -> ServedModel:
        fingerprint = self.fingerprint()
        if self.path is not None:
            # resolved once, so that manifest and ranker come from one bundle even if a symlink moves
            return load_bundle(self.path.resolve(), runtime, fingerprint)
        # the version just resolved, not the alias again: the alias may have moved in between
        version = fingerprint.split(":", 1)[0]
        settings = self.settings.model_copy(update={"model_name": self.registry_name})
        return load_bundle(resolve_bundle(settings, version), runtime, fingerprint)
