"""``recsys model``: versions and aliases in the MLflow registry; rollback."""

from __future__ import annotations

from typing import Annotated

import typer

from recsys.cli.common import DataDirOpt, echo_json, settings_from

app = typer.Typer(help="Inspect and roll back the registered ranker.", no_args_is_help=True)


@app.command("list")
def list_models(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Registered versions with their aliases (champion/challenger), bundle and metrics."""
    from recsys.models.bundles import model_registry

    settings = settings_from(ctx, data_dir=data_dir)
    versions = model_registry(settings).list_versions()
    if as_json:
        echo_json([v.to_dict() for v in versions])
        return
    if not versions:
        typer.echo(f"no versions of {settings.model_name} yet: run `recsys pipeline run --local`")
        return
    for v in versions:
        aliases = ",".join(v.aliases) or "-"
        ndcg = v.metrics.get("ndcg_at_20")
        metric = f"ndcg@20 {ndcg:.4f}" if ndcg is not None else ""
        typer.echo(f"v{v.version:<4} {aliases:<20} bundle {v.bundle_version}  {metric}".rstrip())


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Move `champion` back to the previous champion and re-activate its version online."""
    from recsys.models.bundles import model_registry, resolve_bundle
    from recsys.steps.sync import sync_step

    settings = settings_from(ctx, data_dir=data_dir)
    restored = model_registry(settings).rollback()
    bundle = resolve_bundle(settings, "champion")
    synced = sync_step(
        bundle=bundle,
        data_dir=settings.data_dir.resolve(),
        store_url=settings.online_store_url,
        fallback_url=settings.online_store_fallback_url,
        activate=True,
        progress=False,
    )
    result = {"champion": restored.to_dict(), "online_store": synced}
    if as_json:
        echo_json(result)
    else:
        typer.echo(
            f"champion is now v{restored.version} (bundle {restored.bundle_version}); "
            f"online store: {synced['action']} {synced['version']}"
        )
