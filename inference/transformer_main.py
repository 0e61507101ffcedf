"""Run the transformer: ``python -m inference.transformer_main [flags]`` (see docs/SERVING.md).

KServe's flags come from ``kserve.model_server.parser`` (its ``--predictor_host`` names the
predictor; its integer ``--predictor_request_timeout_seconds`` is replaced by our
``--predictor_timeout_ms``); ours are the fields of ``inference.settings.TransformerSettings``
(flag, or ``RECSYS_TRANSFORMER_*`` variable), validated once into the object this process runs
on; the project settings come from ``load_settings`` (``config/recsys.yaml`` <- ``RECSYS_*``
<- flags).
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import kserve
import kserve.model_server
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from inference import accept_balance, bad_requests
from inference import transformer_metrics as metrics
from inference.chain import Bundle, Chain, Timeouts
from inference.edge import add_edge_flags, edge_settings
from inference.experiments import Experiments
from inference.exposure_log import ExposureLog
from inference.model_source import ModelSource
from inference.predictor import ReloadingRepositoryExtension, recsys_error_handler
from inference.ranker_client import RankerClient
from inference.recommend_route import add_recommend_route
from inference.server import configure_process, model_server, set_request_logs
from inference.settings import TransformerSettings, add_flags, settings_from
from inference.shadow import ShadowMirror
from inference.transformer import RecommenderModel
from recsys.errors import ConfigError, RecsysError
from recsys.models.bundles import resolve_bundle
from recsys.resilience import CircuitBreaker
from recsys.settings import Settings, config_dir, load_settings
from recsys.steps.sync import open_online_store

HTTP_PORT, GRPC_PORT = 8080, 8081
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inference.transformer_main",
        description="KServe transformer: recall -> features -> predictor -> top k",
        parents=[kserve.model_server.parser],
    )
    parser.set_defaults(http_port=HTTP_PORT, grpc_port=GRPC_PORT)
    add_flags(parser, TransformerSettings)
    add_edge_flags(parser)
    return parser


def parse(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, TransformerSettings]:
    """KServe's flags and this process's settings; ConfigError naming a bad flag."""
    args = build_parser().parse_args(argv)
    settings = settings_from(TransformerSettings, args, edge_settings(args))
    if args.workers < 1:
        raise ConfigError(f"--workers: must be at least 1, got {args.workers}")
    if args.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        raise ConfigError(
            f"--workers {args.workers}: set {MULTIPROC_ENV} to an empty writable directory, so that "
            "/metrics adds up the workers' metrics (recsys serve does this)"
        )
    return args, settings


def _rankers(s: TransformerSettings) -> dict[str, RankerClient]:
    hosts = {"champion": s.predictor_host}
    for entry in filter(None, (e.strip() for e in s.predictor_hosts.split(","))):
        alias, sep, host = entry.partition("=")
        if not sep or not alias or not host:
            raise ConfigError(f"--predictor_hosts: {entry!r} is not alias=host:port")
        hosts[alias] = host
    timeout = s.predictor_timeout_ms / 1000
    key = _predictor_key(s)
    return {alias: _client(alias, host, s.model_name, timeout, key) for alias, host in hosts.items()}


def _predictor_key(s: TransformerSettings) -> str | None:
    """RECSYS_AUTH_PREDICTOR_KEY: what this transformer shows its predictors' edge."""
    key = s.auth.predictor_key
    return key.get_secret_value() if key is not None else None


def _breaker(target: str, failure_threshold: int) -> CircuitBreaker:
    """A breaker whose state is exported as ``recommendation_circuit_state{target}``."""
    metrics.track_breaker(target, "closed")
    return CircuitBreaker(target, failure_threshold, reset_timeout_s=2.0, on_change=metrics.track_breaker)


def _client(target: str, host: str, model_name: str, timeout: float, key: str | None) -> RankerClient:
    flags = {"champion": "--predictor_host", "shadow": "--shadow_predictor_host"}
    flag = flags.get(target, "--predictor_hosts")
    try:
        return RankerClient(host, model_name, timeout, _breaker(target, failure_threshold=5), key)
    except ValueError as e:
        raise ConfigError(f"{flag}: {e}") from e


def _bundle_source(s: TransformerSettings, settings: Settings) -> Callable[[], Path]:
    if s.bundle:
        bundle = s.bundle
        return lambda: bundle
    source = ModelSource(f"models:/{settings.model_name}@champion", settings)
    return lambda: resolve_bundle(settings, source.fingerprint().split(":", 1)[0])


def build_model(s: TransformerSettings, *, worker: bool = False) -> RecommenderModel:
    """The transformer model and everything it serves with (store, chain, predictor clients,
    exposure log). ``worker``: one of several worker processes, which logs exposures to a file
    of its own (``exposures-<date>-<pid>.jsonl``; the pipeline reads all of them)."""
    settings = load_settings(data_dir=s.data_dir, online_store=s.store_url)
    bundle_source = _bundle_source(s, settings)
    bundle_dir = bundle_source()
    experiments_path = s.experiments or config_dir() / "experiments.yaml"
    experiments = Experiments.load(experiments_path) if experiments_path.exists() else Experiments.single()
    fallback = s.store_fallback_url or settings.online_store_fallback_url
    store_breaker = _breaker("store", failure_threshold=3)
    # Redis gets half the store budget, so that a timeout still leaves time for the fallback
    store = open_online_store(
        settings.online_store_url,
        fallback,
        timeout_s=s.store_timeout_ms / 2000,
        breaker=store_breaker,
        on_unavailable=metrics.store_unavailable,
        repair=True,
        on_repair=metrics.store_repair,
    )
    shadow = None
    if s.shadow_predictor_host:
        timeout = s.predictor_timeout_ms / 1000
        client = _client("shadow", s.shadow_predictor_host, s.model_name, timeout, _predictor_key(s))
        shadow = ShadowMirror(client, s.shadow_sample_rate, s.shadow_max_in_flight)
    chain = Chain(
        Bundle(bundle_dir),
        store,
        _rankers(s),
        threads=s.chain_threads,
        recall_threads=s.recall_threads,
        timeouts=Timeouts(channel=s.channel_timeout_ms / 1000, request=s.request_timeout_ms / 1000),
        candidates=s.candidates,
        category_cap=s.category_cap,
        shadow=shadow,
        cache_items=s.item_cache_size,
    )
    directory = s.exposure_dir or settings.data_dir / "exposures"
    exposures = ExposureLog(directory, suffix=f"-{os.getpid()}" if worker else "")
    atexit.register(exposures.close)  # the model's stop() closes it too; a second close is a no-op
    model = RecommenderModel(s.model_name, chain, experiments, exposures, bundle_source, s.poll_seconds)
    # KServe's --workers N pickles the registered models into N spawned processes: each one
    # builds its own model from the same settings instead (pools, connections and files do not travel)
    model.rebuild = (worker_model, (s,))
    return model


def install_routes(app: FastAPI, model: RecommenderModel) -> None:
    app.add_exception_handler(RecsysError, recsys_error_handler)
    bad_requests.install(metrics.bad_request)
    add_recommend_route(app, model)


def worker_model(s: TransformerSettings) -> RecommenderModel:
    """Runs in each worker process while KServe unpickles its server there: this process's own
    model, its routes on the worker's app, and a /metrics that adds up all the workers."""
    configure_process(s, "transformer")  # before KServe builds this worker's app and middleware
    if s.balanced_accept == "on":
        accept_balance.install(metrics.track_worker_connections)  # before uvicorn makes its loop
    model = build_model(s, worker=True)
    app = kserve.model_server.app
    # KServe configures the worker's logging after this (which turns request logs back on)
    app.router.on_startup.append(lambda: set_request_logs(s.request_logs))
    install_routes(app, model)
    app.add_api_route("/metrics", multiprocess_metrics, methods=["GET"])  # before KServe's own
    model.start()
    return model


async def multiprocess_metrics() -> Response:
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def build(args: argparse.Namespace, s: TransformerSettings) -> tuple[RecommenderModel, kserve.ModelServer]:
    """With ``--workers N`` > 1 KServe serves REST from N spawned processes that share the port
    (each builds its own model: ``worker_model``; a repository load reloads the worker that
    receives it); gRPC stays in this process, with the model built here."""
    server = model_server(args, s, "transformer")
    model = build_model(s)
    server.model_repository_extension = ReloadingRepositoryExtension(server.registered_models, [model])
    install_routes(kserve.model_server.app, model)
    return model, server


def main(argv: Sequence[str] | None = None) -> None:
    try:
        args, settings = parse(argv)
        model, server = build(args, settings)
    except RecsysError as e:
        print(f"recsys-transformer: error: {e}", file=sys.stderr)
        sys.exit(2)
    server.start([model])


if __name__ == "__main__":
    main()
