"""Run the ranker predictor: ``python -m inference.predictor_main [flags]`` (see docs/SERVING.md).

KServe's own flags (ports, workers, logging, ...) come from ``kserve.model_server.parser``;
ours are the fields of ``inference.settings.PredictorSettings`` (flag, or ``RECSYS_PREDICTOR_*``
variable), validated once; the project settings (data dir, MLflow, registered model name) come
from ``load_settings``: ``config/recsys.yaml`` <- ``RECSYS_*`` <- ``--data_dir``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import kserve
import kserve.model_server

from inference import bad_requests
from inference import metrics as predictor_metrics
from inference.edge import add_edge_flags, edge_settings
from inference.errors import ReloadFailed
from inference.model_source import ModelSource
from inference.predictor import RankerModel, ReloadingRepositoryExtension, recsys_error_handler
from inference.server import model_server
from inference.settings import PredictorSettings, add_flags, settings_from
from recsys.errors import ConfigError, RecsysError
from recsys.settings import load_settings

# the project's ports: 8080/8081 belong to the transformer in front of the predictor
HTTP_PORT, GRPC_PORT = 8082, 8083


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inference.predictor_main",
        description="KServe v2 predictor serving a recsys ranker bundle",
        parents=[kserve.model_server.parser],
    )
    # note: the parent's actions are shared objects, so this also changes kserve's parser defaults
    parser.set_defaults(http_port=HTTP_PORT, grpc_port=GRPC_PORT)
    add_flags(parser, PredictorSettings)
    add_edge_flags(parser)
    return parser


def parse(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, PredictorSettings]:
    """KServe's flags and this process's settings; ConfigError naming a bad flag."""
    args = build_parser().parse_args(argv)
    return args, settings_from(PredictorSettings, args, edge_settings(args))


def build(
    args: argparse.Namespace, server_settings: PredictorSettings
) -> tuple[RankerModel, kserve.ModelServer]:
    """The loaded model and a server ready to ``start([model])``; RecsysError on bad config."""
    s = server_settings
    if args.workers != 1:
        # a reload swaps the model inside one process; scale out with replicas instead
        raise ConfigError(f"--workers: the predictor runs 1 worker, got {args.workers}")
    settings = load_settings(data_dir=s.data_dir)
    uri = s.model_uri or f"models:/{settings.model_name}@champion"
    model = RankerModel(
        s.model_name, ModelSource(uri, settings), s.runtime, scoring_threads=s.scoring_threads,
        poll_seconds=s.poll_seconds,
    )  # fmt: skip
    # the server first: its constructor configures the logging that the load reports through
    server = model_server(args, s, "predictor")
    # handed to the REST and gRPC servers only in start(), so replacing it here is safe
    server.model_repository_extension = ReloadingRepositoryExtension(server.registered_models, [model])
    kserve.model_server.app.add_exception_handler(RecsysError, recsys_error_handler)
    served = s.model_name
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
        raise ReloadFailed(f"model {s.model_name}: cannot load {uri}: {e}") from e
    return model, server


def main(argv: Sequence[str] | None = None) -> None:
    try:
        args, settings = parse(argv)
        model, server = build(args, settings)
    except RecsysError as e:
        print(f"recsys-predictor: error: {e}", file=sys.stderr)
        sys.exit(2)
    server.start([model])


if __name__ == "__main__":
    main()
