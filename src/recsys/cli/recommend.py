"""``recsys recommend``: offline recommendations from the champion bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recsys.cli.common import DataDirOpt, echo_json, settings_from
from recsys.errors import InvalidInput

app = typer.Typer(help="Recommendations from the trained bundle (offline use).", no_args_is_help=True)
BundleOpt = Annotated[
    Path | None, typer.Option("--bundle", help="A bundle directory [default: the MLflow champion's].")
]
KOpt = Annotated[int, typer.Option("--k", min=1, max=500, help="Items per user.")]


def _recommender(ctx: typer.Context, data_dir: Path | None, bundle: Path | None):  # noqa: ANN202
    from recsys.models.bundles import resolve_bundle
    from recsys.recommend import BundleRecommender

    settings = settings_from(ctx, data_dir=data_dir)
    return BundleRecommender(bundle or resolve_bundle(settings, "champion"))


def _read_users(path: Path) -> list[str]:
    if not path.exists():
        raise InvalidInput(f"--users: {path} does not exist")
    lines = [line.strip() for line in path.read_text().splitlines()]
    if lines and lines[0].split(",")[0] == "user_id":  # a CSV with a header: first column
        lines = lines[1:]
    users = [line.split(",")[0].strip() for line in lines if line]
    if not users:
        raise InvalidInput(f"--users: {path} holds no user ids (one per line, or a CSV with user_id first)")
    return users


@app.command("batch")
def batch(
    ctx: typer.Context,
    users: Annotated[Path, typer.Option("--users", help="User ids, one per line (or CSV, user_id first).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV: user_id,rank,item_id,score.")],
    k: KOpt = 20,
    data_dir: DataDirOpt = None,
    bundle: BundleOpt = None,
) -> None:
    """Top-k per user. Each list leaves out inactive items and what the bundle's seen policy
    excludes for that user, over their whole past in the data the bundle was trained on: by
    default anything they bought, added to a cart, clicked or rated; plain views may come back
    (filter.exclude_seen in config/recall.yaml)."""
    ids = _read_users(users)
    rec = _recommender(ctx, data_dir, bundle)
    frame = rec.batch(ids, k)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(output)
    policy = rec.chain.recall.config.filter.exclude_seen.describe()
    typer.echo(
        f"wrote {len(frame)} rows for {len(ids)} users to {output} (bundle {rec.version}; left out per "
        f"user: what they {policy})"
    )


@app.command("user")
def user(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help="The user id.")],
    k: KOpt = 10,
    data_dir: DataDirOpt = None,
    bundle: BundleOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One user's list with the recall channels that produced each item; leaves out what the
    bundle's seen policy excludes for the user (by default anything they bought, added to a cart,
    clicked or rated) and inactive items."""
    rec = _recommender(ctx, data_dir, bundle)
    items = rec.recommend(user_id, k)
    if as_json:
        echo_json({"user_id": user_id, "bundle": rec.version, "items": [i.__dict__ for i in items]})
        return
    known = "known user" if user_id in rec.user_ids else "cold start (unknown user)"
    typer.echo(f"user {user_id} ({known}), bundle {rec.version}")
    for rank, item in enumerate(items, start=1):
        typer.echo(f"{rank:>3}. {item.item_id:<12} {item.score:8.4f}  {', '.join(item.channels)}")
