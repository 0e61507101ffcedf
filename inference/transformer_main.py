"""Run the transformer: ``python -m inference.transformer_main [flags]`` (see docs/SERVING.md).

KServe's flags come from ``kserve.model_server.parser`` (its ``--predictor_host`` names the
predictor; its integer ``--predictor_request_timeout_seconds`` is replaced by our
``--predictor_timeout_ms``); ours say where the bundle, the
online store and the experiments are. Flags also read ``RECSYS_TRANSFORMER_*`` variables; the
project settings come from ``load_settings`` (``config/recsys.yaml`` <- ``RECSYS_*`` <- flags).
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
from inference.edge import edge_settings
from inference.experiments import Experiments
from inference.exposure_log import ExposureLog
from inference.model_source import ModelSource
from inference.predictor import ReloadingRepositoryExtension, recsys_error_handler
from inference.ranker_client import RankerClient
from inference.recommend_route import add_recommend_route
from inference.server import add_limit_flags, configure_process, model_server, set_request_logs
from inference.shadow import ShadowMirror
from inference.transformer import RecommenderModel
from recsys.errors import ConfigError, RecsysError
from recsys.models.bundles import resolve_bundle
from recsys.resilience import CircuitBreaker
from recsys.settings import Settings, config_dir, load_settings
from recsys.steps.sync import open_online_store

HTTP_PORT, GRPC_PORT = 8080, 8081
ENV_PREFIX = "RECSYS_TRANSFORMER_"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name) or default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inference.transformer_main",
        description="KServe transformer: recall -> features -> predictor -> top k",
        parents=[kserve.model_server.parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.set_defaults(
        model_name=_env("MODEL_NAME", "recsys"),
        http_port=HTTP_PORT,
        grpc_port=GRPC_PORT,
        predictor_host=_env("PREDICTOR_HOST", "localhost:8082"),
    )
    add = parser.add_argument
    add(
        "--predictor_hosts",
        default=_env("PREDICTOR_HOSTS", ""),
        help="rankers of experiment variants: alias=host:port,... (champion = --predictor_host)",
    )
    add("--bundle", default=_env("BUNDLE"), help="bundle directory; default the registry's champion")
    add("--data_dir", default=None, help="project data dir (MLflow store, bundles, exposures/)")
    add("--store_url", default=_env("STORE_URL"), help="online store; default the settings' online_store")
    add("--store_fallback_url", default=_env("STORE_FALLBACK_URL"), help="SQLite store used when it is down")
    add(
        "--experiments", default=_env("EXPERIMENTS"), help="experiments YAML; default config/experiments.yaml"
    )
    add("--exposure_dir", default=_env("EXPOSURE_DIR"), help="exposure log dir; default <data_dir>/exposures")
    add(
        "--channel_timeout_ms",
        type=float,
        default=float(_env("CHANNEL_TIMEOUT_MS", "50") or 50),
        help="each recall channel's timeout",
    )
    add(
        "--predictor_timeout_ms",
        type=float,
        default=float(_env("PREDICTOR_TIMEOUT_MS", "200") or 200),
        help="each predictor call's timeout",
    )
    add(
        "--store_timeout_ms",
        type=float,
        default=float(_env("STORE_TIMEOUT_MS", "50") or 50),
        help="each online store read's timeout (half of it for Redis, half for the fallback)",
    )
    add(
        "--request_timeout_ms",
        type=float,
        default=float(_env("REQUEST_TIMEOUT_MS", "250") or 250),
        help="the whole request's timeout; popular items after it",
    )
    add(
        "--shadow_predictor_host",
        default=_env("SHADOW_PREDICTOR_HOST", ""),
        help="host:port of a shadow predictor that sampled ranking requests are mirrored to",
    )
    add("--shadow_sample_rate", type=float, default=float(_env("SHADOW_SAMPLE_RATE", "0.1") or 0.1))
    add(
        "--shadow_max_in_flight",
        type=int,
        default=int(_env("SHADOW_MAX_IN_FLIGHT", "4") or 4),
        help="mirrors running at once; more are dropped, never queued",
    )
    add(
        "--poll_seconds",
        type=float,
        default=float(_env("POLL_SECONDS", "0") or 0),
        help="follow the champion: reload the bundle when it changed, checked every N seconds; 0 = off",
    )
    add(
        "--chain_threads",
        type=int,
        default=int(_env("CHAIN_THREADS", "1") or 1),
        help="threads running request chains (history, recall, lookup, matrix); more interleave "
        "requests under the GIL and lengthen the tail",
    )
    add(
        "--recall_threads",
        type=int,
        default=int(_env("RECALL_THREADS", "2") or 2),
        help="threads running recall channels; keep 2 or more, so one hung channel cannot starve the rest",
    )
    add(
        "--candidates",
        type=int,
        default=int(_env("CANDIDATES", "") or 0) or None,
        help="fused candidates the ranker scores [default: the bundle's chain.json, as evaluated]",
    )
    add(
        "--item_cache_size",
        type=int,
        default=int(_env("ITEM_CACHE_SIZE", "100000") or 0),
        help="item vectors of the served version kept in memory (never stale: a version never "
        "changes); 0 = read every item from the store",
    )
    add(
        "--category_cap",
        type=int,
        default=None if _env("CATEGORY_CAP", "") in (None, "") else int(_env("CATEGORY_CAP", "")),
        help="at most this many items of one category in a list, 0 = no cap [default: the bundle's "
        "chain.json, as evaluated]",
    )
    add(
        "--balanced_accept",
        choices=("on", "off"),
        default=_env("BALANCED_ACCEPT", "on") or "on",
        help="with --workers > 1, workers take new connections in turn (off: whichever worker "
        "wakes first accepts, as KServe does)",
    )
    add(
        "--request_logs",
        action="store_true",
        default=_env("REQUEST_LOGS", "") in ("1", "true"),
        help="log every request (uvicorn access log, KServe timings); off: Prometheus counts them",
    )
    add_limit_flags(parser, _env)
    return parser


def _rankers(args: argparse.Namespace) -> dict[str, RankerClient]:
    hosts = {"champion": args.predictor_host}
    for entry in filter(None, (e.strip() for e in args.predictor_hosts.split(","))):
        alias, sep, host = entry.partition("=")
        if not sep or not alias or not host:
            raise ConfigError(f"--predictor_hosts: {entry!r} is not alias=host:port")
        hosts[alias] = host
    timeout = args.predictor_timeout_ms / 1000
    key = _predictor_key(args)
    return {alias: _client(alias, host, args.model_name, timeout, key) for alias, host in hosts.items()}


def _predictor_key(args: argparse.Namespace) -> str | None:
    """RECSYS_AUTH_PREDICTOR_KEY: what this transformer shows its predictors' edge."""
    key = edge_settings(args).predictor_key
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


def _bundle_source(args: argparse.Namespace, settings: Settings) -> Callable[[], Path]:
    if args.bundle:
        return lambda: Path(args.bundle)
    source = ModelSource(f"models:/{settings.model_name}@champion", settings)
    return lambda: resolve_bundle(settings, source.fingerprint().split(":", 1)[0])


def check_args(args: argparse.Namespace) -> None:
    if args.workers < 1:
        raise ConfigError(f"--workers: must be at least 1, got {args.workers}")
    if args.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        raise ConfigError(
            f"--workers {args.workers}: set {MULTIPROC_ENV} to an empty writable directory, so that "
            "/metrics adds up the workers' metrics (recsys serve does this)"
        )
    positive = ("channel_timeout_ms", "predictor_timeout_ms", "store_timeout_ms", "request_timeout_ms",
                "chain_threads", "recall_threads", "shadow_max_in_flight")  # fmt: skip
    for name in positive:
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name}: must be positive, got {getattr(args, name)}")
    if args.candidates is not None and args.candidates <= 0:
        raise ConfigError(f"--candidates: must be positive, got {args.candidates}")
    if args.category_cap is not None and args.category_cap < 0:
        raise ConfigError(f"--category_cap: must be >= 0, got {args.category_cap}")
    if args.balanced_accept not in ("on", "off"):  # argparse checks choices on the command line only
        raise ConfigError(f"--balanced_accept: must be on or off, got {args.balanced_accept!r}")
    if args.item_cache_size < 0:
        raise ConfigError(f"--item_cache_size: must be >= 0, got {args.item_cache_size}")
    if not 0 <= args.shadow_sample_rate <= 1 or args.poll_seconds < 0:
        raise ConfigError("--shadow_sample_rate must be in [0, 1] and --poll_seconds >= 0")


def build_model(args: argparse.Namespace, *, worker: bool = False) -> RecommenderModel:
    """The transformer model and everything it serves with (store, chain, predictor clients,
    exposure log). ``worker``: one of several worker processes, which logs exposures to a file
    of its own (``exposures-<date>-<pid>.jsonl``; the pipeline reads all of them)."""
    settings = load_settings(data_dir=args.data_dir, online_store=args.store_url)
    bundle_source = _bundle_source(args, settings)
    bundle_dir = bundle_source()
    experiments_path = Path(args.experiments) if args.experiments else config_dir() / "experiments.yaml"
    experiments = Experiments.load(experiments_path) if experiments_path.exists() else Experiments.single()
    fallback = args.store_fallback_url or settings.online_store_fallback_url
    store_breaker = _breaker("store", failure_threshold=3)
    # Redis gets half the store budget, so that a timeout still leaves time for the fallback
    store = open_online_store(
        settings.online_store_url,
        fallback,
        timeout_s=args.store_timeout_ms / 2000,
        breaker=store_breaker,
        on_unavailable=metrics.store_unavailable,
        repair=True,
        on_repair=metrics.store_repair,
    )
    shadow = None
    if args.shadow_predictor_host:
        timeout = args.predictor_timeout_ms / 1000
        client = _client("shadow", args.shadow_predictor_host, args.model_name, timeout, _predictor_key(args))
        shadow = ShadowMirror(client, args.shadow_sample_rate, args.shadow_max_in_flight)
    chain = Chain(
        Bundle(bundle_dir),
        store,
        _rankers(args),
        threads=args.chain_threads,
        recall_threads=args.recall_threads,
        timeouts=Timeouts(
            channel=args.channel_timeout_ms / 1000,
            request=args.request_timeout_ms / 1000,
        ),
        candidates=args.candidates,
        category_cap=args.category_cap,
        shadow=shadow,
        cache_items=args.item_cache_size,
    )
    directory = Path(args.exposure_dir) if args.exposure_dir else settings.data_dir / "exposures"
    exposures = ExposureLog(directory, suffix=f"-{os.getpid()}" if worker else "")
    atexit.register(exposures.close)  # the model's stop() closes it too; a second close is a no-op
    model = RecommenderModel(args.model_name, chain, experiments, exposures, bundle_source, args.poll_seconds)
    # KServe's --workers N pickles the registered models into N spawned processes: each one
    # builds its own model from the same flags instead (pools, connections and files do not travel)
    model.rebuild = (worker_model, (args,))
    return model


def install_routes(app: FastAPI, model: RecommenderModel) -> None:
    app.add_exception_handler(RecsysError, recsys_error_handler)
    bad_requests.install(metrics.bad_request)
    add_recommend_route(app, model)


def worker_model(args: argparse.Namespace) -> RecommenderModel:
    """Runs in each worker process while KServe unpickles its server there: this process's own
    model, its routes on the worker's app, and a /metrics that adds up all the workers."""
    configure_process(args, "transformer")  # before KServe builds this worker's app and middleware
    if args.balanced_accept == "on":
        accept_balance.install(metrics.track_worker_connections)  # before uvicorn makes its loop
    model = build_model(args, worker=True)
    app = kserve.model_server.app
    # KServe configures the worker's logging after this (which turns request logs back on)
    app.router.on_startup.append(lambda: set_request_logs(args.request_logs))
    install_routes(app, model)
    app.add_api_route("/metrics", multiprocess_metrics, methods=["GET"])  # before KServe's own
    model.start()
    return model


async def multiprocess_metrics() -> Response:
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def build(args: argparse.Namespace) -> tuple[RecommenderModel, kserve.ModelServer]:
    """With ``--workers N`` > 1 KServe serves REST from N spawned processes that share the port
    (each builds its own model: ``worker_model``; a repository load reloads the worker that
    receives it); gRPC stays in this process, with the model built here."""
    check_args(args)
    server = model_server(args, "transformer")
    model = build_model(args)
    server.model_repository_extension = ReloadingRepositoryExtension(server.registered_models, [model])
    install_routes(kserve.model_server.app, model)
    return model, server


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        model, server = build(args)
    except RecsysError as e:
        print(f"recsys-transformer: error: {e}", file=sys.stderr)
        sys.exit(2)
    server.start([model])


if __name__ == "__main__":
    main()
