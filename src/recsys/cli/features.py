"""``recsys features``: the feature registry."""

from __future__ import annotations

from typing import Annotated

import typer

from recsys.cli.common import echo_json, settings_from

app = typer.Typer(help="Inspect the feature registry.", no_args_is_help=True)


@app.command("list")
def list_features(
    ctx: typer.Context,
    entity: Annotated[str | None, typer.Option(help="Only user, item or cross.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the registry, one feature a line: name, entity, dtype (and dim for profiles)."""
    from recsys.features.registry import load_registry

    registry = load_registry(settings_from(ctx).feature_registry)
    specs = [f for f in registry.features if entity is None or f.entity == entity]
    if as_json:
        echo_json([f.model_dump() for f in specs])
        return
    for f in specs:
        extra = f"  profile[{f.dim}]" if f.kind == "profile" else ""
        typer.echo(f"{f.name:<34} {f.entity:<5} {f.dtype:<8}{extra}".rstrip())
    scalars = sum(1 for f in specs if f.kind == "scalar")
    typer.echo(f"# {len(specs)} features ({scalars} ranker inputs), schema {registry.schema_hash}", err=True)
