"""Run the ranker predictor: ``python -m inference.predictor_main [flags]`` (see docs/SERVING.md).

KServe's own flags (ports, workers, logging, ...) come from ``kserve.model_server.parser``;
ours add where the model comes from. Predictor flags also read ``RECSYS_PREDICTOR_*``
variables, and the project settings (data dir, MLflow, registered model name) come from
``load_settings``: ``config/recsys.yaml`` <- ``RECSYS_*`` <- ``--data_dir``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import kserve
import kserve.model_server

from inference import bad_requests
from inference import metrics as predictor_metrics
from inference.errors import ReloadFailed
from inference.model_source import RUNTIMES, ModelSource
from inference.predictor import RankerModel, ReloadingRepositoryExtension, recsys_error_handler
from inference.server import add_limit_flags, model_server
from recsys.errors import ConfigError, RecsysError
from recsys.settings import load_settings

# the project's ports: 8080/8081 belong to the transformer in front of the predictor
HTTP_PORT, GRPC_PORT = 8082, 8083
ENV_PREFIX = "RECSYS_PREDICTOR_"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name) or default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inference.predictor_main",
        description="KServe v2 predictor serving a recsys ranker bundle",
        parents=[kserve.model_server.parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    # note: the parent's actions are shared objects, so this also changes kserve's parser defaults
    parser.set_defaults(model_name=_env("MODEL_NAME", "recsys"), http_port=HTTP_PORT, grpc_port=GRPC_PORT)
    parser.add_argument(
        "--model_uri",
        default=_env("MODEL_URI"),
        help="bundle directory, or models:/<name>@<alias> | models:/<name>/<version> from the MLflow "
        "registry; default models:/<RECSYS_MODEL_NAME>@champion",
    )
    parser.add_argument(
        "--runtime", default=_env("RUNTIME", "onnx"), help=f"ranker runtime: {' | '.join(RUNTIMES)}"
    )
    parser.add_argument(
        "--data_dir", default=None, help="project data dir (local MLflow store, downloaded bundles)"
    )
    parser.add_argument(
        "--poll_seconds",
        type=float,
        default=float(_env("POLL_SECONDS", "0") or 0),
        help="reload when the alias or manifest.json changed, checked every N seconds; 0 = off",
    )
    parser.add_argument(
        "--scoring_threads",
        type=int,
        default=int(_env("SCORING_THREADS", "4") or 4),
        help="threads that run the ranker (each ONNX run is single-threaded)",
    )
    parser.add_argument(
        "--request_logs",
        action="store_true",
        default=_env("REQUEST_LOGS", "") in ("1", "true"),
        help="log every request (uvicorn access log, KServe timings); off: Prometheus counts them",
    )
    add_limit_flags(parser, _env)
    return parser


def build(args: argparse.Namespace) -> tuple[RankerModel, kserve.ModelServer]:
    """The loaded model and a server ready to ``start([model])``; RecsysError on bad config."""
    if args.runtime not in RUNTIMES:
        raise ConfigError(f"--runtime: {args.runtime!r} is not one of {', '.join(RUNTIMES)}")
    if args.workers != 1:
        # a reload swaps the model inside one process; scale out with replicas instead
        raise ConfigError(f"--workers: the predictor runs 1 worker, got {args.workers}")
    if args.poll_seconds < 0 or args.scoring_threads < 1:
        raise ConfigError("--poll_seconds must be >= 0 and --scoring_threads >= 1")
    settings = load_settings(data_dir=args.data_dir)
    uri = args.model_uri or f"models:/{settings.model_name}@champion"
    model = RankerModel(
        args.model_name,
        ModelSource(uri, settings),
        args.runtime,
        scoring_threads=args.scoring_threads,
        poll_seconds=args.poll_seconds,
    )
    # the server first: its constructor configures the logging that the load reports through
    server = model_server(args, "predictor")
    # handed to the REST and gRPC servers only in start(), so replacing it here is safe
    server.model_repository_extension = ReloadingRepositoryExtension(server.registered_models, [model])
    kserve.model_server.app.add_exception_handler(RecsysError, recsys_error_handler)
    served = args.model_name
    bad_requests.install(
        lambda name: predictor_metrics.PREDICTIONS.labels(
            model=name if name == served else "", status="invalid_input"
        ).inc()
    )
    try:
        model.load()
    except RecsysError:
        raise
    except Exception as e:
        # onnxruntime, LightGBM or MLflow failing on a broken bundle: one readable line, not a trace
        raise ReloadFailed(f"model {args.model_name}: cannot load {uri}: {e}") from e
    return model, server


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        model, server = build(args)
    except RecsysError as e:
        print(f"recsys-predictor: error: {e}", file=sys.stderr)
        sys.exit(2)
    server.start([model])


if __name__ == "__main__":
    main()
