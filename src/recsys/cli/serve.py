"""``recsys serve``: the KServe predictor and transformer on this machine, on the trained artifacts.

Both run as their own processes (``python -m inference.predictor_main`` / ``transformer_main``),
exactly as in the cluster; both follow the registry's champion of ``--data-dir``. The command
waits until both report ready, prints how to call them, optionally shows a few users'
recommendations, and serves until Ctrl-C / SIGTERM, which stops both gracefully (the exposure
log is flushed). A server that crashes meanwhile is restarted with backoff (``recsys.supervisor``).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Annotated, Any

import typer

from recsys.cli.common import DataDirOpt, settings_from
from recsys.errors import ConfigError, RecsysError
from recsys.supervisor import RestartPolicy, Server, Supervisor


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # as uvicorn binds: connections of a previous server in TIME_WAIT do not block the port
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def recommend_via_http(url: str, user_id: str, k: int) -> dict[str, Any]:
    query = urllib.parse.urlencode({"user_id": user_id, "k": k})
    with urllib.request.urlopen(f"http://{url}/recommend?{query}", timeout=10) as resp:
        return json.loads(resp.read())


def _show(url: str, users: list[str], k: int) -> None:
    for user in users:
        body = recommend_via_http(url, user, k)
        typer.echo(
            f"\nuser {user}: variant {body['experiment_variant']}, degrade level {body['degrade_level']}, "
            f"model {body['model_version']}"
        )
        for rank, item in enumerate(body["items"], 1):
            typer.echo(
                f"  {rank:>2}. {item['item_id']:<12} {item['score']:.4f}  {','.join(item['channels'])}"
            )


def _usage(transformer: Server, predictor: Server, model: str) -> str:
    t, p = transformer.url, predictor.url
    v2 = json.dumps({"inputs": [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["u000001"]},
                                {"name": "k", "shape": [1], "datatype": "INT32", "data": [5]}]})  # fmt: skip
    return "\n".join([
        f"transformer (recall + features + ranking): http://{t}  gRPC 127.0.0.1:{transformer.grpc_port}",
        f"predictor (ranker):                        http://{p}  gRPC 127.0.0.1:{predictor.grpc_port}",
        "",
        f"  curl 'http://{t}/recommend?user_id=u000001&k=5'",
        f"  curl -H 'Content-Type: application/json' -d '{v2}' http://{t}/v2/models/{model}/infer",
        f"  curl http://{t}/metrics        (Prometheus; the predictor's on http://{p}/metrics)",
        f"  curl -X POST http://{t}/v2/repository/models/{model}/load   (reload the champion now)",
        f"logs: {transformer.log}, {predictor.log}",
    ])  # fmt: skip


def serve(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    model_name: Annotated[
        str, typer.Option(help="Model name on both servers (KServe: the ISVC's).")
    ] = "recsys",
    http_port: Annotated[int, typer.Option(help="Transformer REST port.")] = 8080,
    grpc_port: Annotated[int, typer.Option(help="Transformer gRPC port.")] = 8081,
    predictor_http_port: Annotated[int, typer.Option(help="Predictor REST port.")] = 8082,
    predictor_grpc_port: Annotated[int, typer.Option(help="Predictor gRPC port.")] = 8083,
    store: Annotated[
        str | None,
        typer.Option(help="Online store URL [env RECSYS_ONLINE_STORE, default sqlite in data dir]."),
    ] = None,
    shadow_port: Annotated[
        int | None, typer.Option(help="Also start a shadow predictor (the champion, LightGBM runtime) here.")
    ] = None,
    try_users: Annotated[
        str | None, typer.Option(help="Comma-separated user ids whose recommendations are shown once ready.")
    ] = None,
    k: Annotated[int, typer.Option(min=1, max=500, help="Items per shown user.")] = 5,
    once: Annotated[
        bool, typer.Option("--once", help="Stop after showing --try-users (for scripts).")
    ] = False,
    poll_seconds: Annotated[
        float, typer.Option(min=0, help="Follow the champion every N s; 0 = off.")
    ] = 10.0,
    ready_timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for both servers.")] = 180.0,
    transformer_workers: Annotated[
        int, typer.Option(min=1, help="Transformer processes sharing its port (KServe --workers).")
    ] = 1,
    max_restarts: Annotated[
        int,
        typer.Option(
            min=0,
            help="Restart a crashed server this many times in a row (1 s, 2 s, 4 s ... "
            "apart) before giving up; 0 = a crash stops everything.",
        ),
    ] = 5,
) -> None:
    """Start predictor and transformer on the champion, wait until ready, print how to call them."""
    from recsys.steps.sync import latest_bundle

    settings = settings_from(ctx, data_dir=data_dir, online_store=store)
    data = settings.data_dir.resolve()
    latest_bundle(data)  # a clear error before anything starts when nothing was trained
    ports = {"--http-port": http_port, "--grpc-port": grpc_port, "--predictor-http-port": predictor_http_port,
             "--predictor-grpc-port": predictor_grpc_port}  # fmt: skip
    if shadow_port is not None:
        ports["--shadow-port"] = shadow_port
    if len(set(ports.values())) != len(ports):
        raise ConfigError(f"serve: ports must differ: {ports}")
    for flag, port in ports.items():
        if not _port_free(port):
            raise ConfigError(f"serve: {flag} {port} is in use (stop what runs there or pick another port)")
    common = [
        "--model_name",
        model_name,
        "--poll_seconds",
        str(poll_seconds),
        "--enable_latency_logging",
        "false",
    ]
    predictor = Server(
        "predictor", "inference.predictor_main", predictor_http_port, predictor_grpc_port, common
    )
    servers = [predictor]
    t_args = [*common, "--predictor_host", predictor.url, "--store_url", settings.online_store_url]
    if shadow_port is not None:
        shadow_args = [*common, "--runtime", "lightgbm", "--enable_grpc", "false"]
        shadow = Server("shadow", "inference.predictor_main", shadow_port, 0, shadow_args)
        servers.append(shadow)
        t_args += ["--shadow_predictor_host", shadow.url]
    transformer = Server("transformer", "inference.transformer_main", http_port, grpc_port, t_args)
    log_dir = data / "logs" / "serve"
    log_dir.mkdir(parents=True, exist_ok=True)
    if transformer_workers > 1:
        # the workers' metrics files: /metrics adds them up; stale ones would be added too
        metrics_dir = log_dir / "transformer-metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir()
        transformer.args += ["--workers", str(transformer_workers)]
        transformer.env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    order = [transformer, *servers]  # stop order
    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    supervisor = Supervisor(order, data, log_dir, RestartPolicy(max_in_a_row=max_restarts),
                            report=lambda line: typer.echo(line, err=True))  # fmt: skip
    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        typer.echo(f"starting {', '.join(s.name for s in order)} on the champion of {data} ...")
        supervisor.start_all(ready_timeout)
        typer.echo("ready.\n" + _usage(transformer, predictor, model_name))
        if try_users:
            _show(transformer.url, [u.strip() for u in try_users.split(",") if u.strip()], k)
        if once:
            return
        typer.echo("\nserving; Ctrl-C stops both servers")
        supervisor.watch()
    except KeyboardInterrupt:
        typer.echo("stopping ...")
    except urllib.error.URLError as e:
        raise RecsysError(f"serve: the transformer did not answer: {e}") from e
    finally:
        supervisor.stop_all()
        signal.signal(signal.SIGTERM, previous)
