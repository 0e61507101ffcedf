"""``recsys pipeline``: run the offline DAG locally with kfp.local, or compile it for KFP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recsys.cli.common import DataDirOpt, SourceDbOpt, echo_json, settings_from
from recsys.errors import ConfigError, QualityGateFailed

app = typer.Typer(help="Run or compile the offline pipeline.", no_args_is_help=True)


def _print_summary(summary: dict) -> None:
    ex, cl = summary["extracted"], summary["cleaned"]
    status = summary["status"].replace("_", " ")
    typer.echo(f"run {summary['run_id']} {status} in {summary['duration_seconds']}s")
    per_table = ", ".join(f"{t} {n}" for t, n in ex["tables"].items())
    typer.echo(f"  extracted: {ex['rows']} rows ({per_table})")
    typer.echo(
        f"  cleaned:   {cl.get('kept', 0)} kept, {cl.get('fixed', 0)} fixed, "
        f"{cl.get('dropped', 0)} dropped of {cl.get('input', 0)}"
    )
    typer.echo(f"  output:    {cl.get('output')}")
    typer.echo(f"  report:    {summary['artifacts']['cleaning_report']}")
    typer.echo(f"  metrics:   {summary['artifacts']['run_metrics']}")
    if summary.get("features"):
        f = summary["features"]
        typer.echo(
            f"  features:  {f['users']} users, {f['items']} items, {f['ranker_features']} ranker features"
        )
    if summary.get("quality"):
        q = summary["quality"]
        typer.echo(f"  quality:   score {q['score']} / {q['threshold']}, report {q['report_html']}")
    if summary.get("synced"):
        sy = summary["synced"]
        typer.echo(f"  online:    version {sy['version']} active in {sy['store']}")


@app.command("run")
def run(
    ctx: typer.Context,
    local_run: Annotated[
        bool, typer.Option("--local", help="Run on this machine with kfp.local (no cluster).")
    ] = False,
    source_db: SourceDbOpt = None,
    data_dir: DataDirOpt = None,
    window_start: Annotated[
        str | None, typer.Option(help="Re-extract updated_at >= this ISO time (backfill).")
    ] = None,
    window_end: Annotated[str | None, typer.Option(help="... and < this ISO time.")] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Compute features, training and evaluation splits, freshness and lag as of this ISO "
            "time, or 'latest' (the newest event in the source) [default: now].",
        ),
    ] = None,
    sync_only: Annotated[
        bool,
        typer.Option("--sync-only", help="Only re-publish the latest bundle to the online store."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Run the training pipeline: extract_load -> clean -> features -> quality_gate -> sync_store."""
    from pipelines.local import run_local, run_sync_local
    from pipelines.summary import gate_failure
    from recsys.steps import parse_time
    from recsys.steps.extract import check_as_of

    if not local_run:
        raise ConfigError(
            "pipeline run: only --local is supported here; on a cluster, "
            "`recsys pipeline compile` and submit the YAML to Kubeflow Pipelines"
        )
    as_of_text = check_as_of(as_of)
    settings = settings_from(ctx, data_dir=data_dir, source_db=source_db)
    if sync_only:
        result = run_sync_local(settings)
        if as_json:
            echo_json(result, sort_keys=False)
        else:
            sy = result["synced"]
            typer.echo(
                f"re-published bundle {sy['version']} to {sy['store']} in {result['duration_seconds']}s"
            )
        return
    summary = run_local(
        settings,
        window_start=parse_time(window_start, "--window-start"),
        window_end=parse_time(window_end, "--window-end"),
        as_of=as_of_text,
    )
    if as_json:
        # steps in the order they ran, not alphabetically
        echo_json(summary, sort_keys=False)
    else:
        _print_summary(summary)
    if reason := gate_failure(summary):
        raise QualityGateFailed(reason)


@app.command("compile")
def compile_cmd(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the IR YAML.")],
) -> None:
    """Compile the training pipeline to KFP IR YAML."""
    from pipelines.compile import compile_training

    settings = settings_from(ctx)
    path = compile_training(settings.image, output)
    typer.echo(f"wrote {path} (image {settings.image})")


@app.command("schedule")
def schedule_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Kubeflow Pipelines API, e.g. http://ml-pipeline.kubeflow:8888.")],
    data_pvc: Annotated[
        str, typer.Option("--data-pvc", help="ReadWriteMany PVC mounted at /data in every step (the lake).")
    ],
    cron: Annotated[str, typer.Option(help="KFP cron, 6 fields, seconds first.")] = "0 0 3 * * *",
    name: Annotated[
        str, typer.Option(help="Recurring run name; an existing one is replaced.")
    ] = "recsys-training",
    experiment: Annotated[str, typer.Option(help="KFP experiment (created when missing).")] = "recsys",
    source_db_secret: Annotated[
        str, typer.Option("--source-db-secret", help="Secret whose key `url` becomes RECSYS_SOURCE_DB.")
    ] = "",
    store_secret: Annotated[
        str,
        typer.Option(
            "--store-secret", help="Secret whose key `online-store-url` becomes RECSYS_ONLINE_STORE."
        ),
    ] = "",
    namespace: Annotated[str | None, typer.Option(help="KFP namespace (multi-user mode).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Schedule the training pipeline as a recurring run on Kubeflow Pipelines (the components run
    in the settings' `image`)."""
    from pipelines.cluster import ClusterConfig
    from pipelines.submit import schedule_training

    settings = settings_from(ctx)
    result = schedule_training(
        settings,
        host=host,
        name=name,
        cron=cron,
        experiment=experiment,
        cluster=ClusterConfig(
            data_pvc=data_pvc, source_db_secret=source_db_secret, store_secret=store_secret
        ),
        namespace=namespace,
    )
    if as_json:
        echo_json(result)
    else:
        replaced = f", replacing {', '.join(result['replaced'])}" if result["replaced"] else ""
        typer.echo(
            f"recurring run {result['name']} ({result['recurring_run_id']}) every '{cron}' "
            f"in experiment {experiment}{replaced}; image {result['image']}, data on PVC {data_pvc}"
        )
