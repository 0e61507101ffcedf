"""``recsys store``: publish to and inspect the online store."""

from __future__ import annotations

from typing import Annotated

import typer

from recsys.cli.common import DataDirOpt, echo_json, settings_from

app = typer.Typer(help="Publish to or inspect the online feature store.", no_args_is_help=True)
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Online store URL [env RECSYS_ONLINE_STORE, default sqlite in data dir]."),
]


@app.command("sync")
def sync(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Publish the latest bundle's features to the online store (no recomputation)."""
    from recsys.steps.sync import latest_bundle, publish_bundle

    settings = settings_from(ctx, data_dir=data_dir, online_store=store)
    bundle = latest_bundle(settings.data_dir.resolve())
    result = publish_bundle(bundle, settings.online_store_url, settings.online_store_fallback_url)
    if as_json:
        echo_json(result)
    else:
        typer.echo(
            f"published bundle {result['version']} to {result['store']} (active: {result['active_version']})"
        )


@app.command("status")
def status(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the store's versions and which one is active."""
    from recsys.redaction import redact
    from recsys.steps.sync import open_online_store

    settings = settings_from(ctx, data_dir=data_dir, online_store=store)
    with open_online_store(settings.online_store_url, settings.online_store_fallback_url) as online:
        info = {
            "store": redact(settings.online_store_url),
            "active_version": online.active_version(),
            "versions": online.versions(),
        }
    if as_json:
        echo_json(info)
        return
    typer.echo(f"{info['store']}: active {info['active_version']}")
    for version in info["versions"]:
        typer.echo(f"  {'*' if version == info['active_version'] else ' '} {version}")
