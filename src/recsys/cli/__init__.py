"""The ``recsys`` command line. Errors end as one line on stderr and a non-zero exit."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from typer._click import exceptions as typer_click

from recsys import IMAGE, __version__
from recsys.cli import data as data_cli
from recsys.cli import evaluate as evaluate_cli
from recsys.cli import features as features_cli
from recsys.cli import model as model_cli
from recsys.cli import pipeline as pipeline_cli
from recsys.cli import recommend as recommend_cli
from recsys.cli import serve as serve_cli
from recsys.cli import store as store_cli
from recsys.errors import QualityGateFailed, RecsysError

app = typer.Typer(
    name="recsys",
    help="Kubernetes-native production recommender: offline pipeline, data and serving tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(pipeline_cli.app, name="pipeline")
app.add_typer(features_cli.app, name="features")
app.add_typer(store_cli.app, name="store")
app.add_typer(model_cli.app, name="model")
app.add_typer(recommend_cli.app, name="recommend")
app.command("serve")(serve_cli.serve)
app.command("evaluate")(evaluate_cli.evaluate)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"recsys {__version__} (image {IMAGE})")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML settings file (default: $RECSYS_CONFIG or config/recsys.yaml)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = {"config": config}


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, prog_name="recsys", standalone_mode=False)
    except RecsysError as e:
        print(f"recsys: error: {e}", file=sys.stderr)
        return 3 if isinstance(e, QualityGateFailed) else 2
    except (click.exceptions.Abort, typer.Abort):
        print("recsys: aborted", file=sys.stderr)
        return 130
    except (click.ClickException, typer_click.ClickException) as e:  # typer vendors its own click
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: one line by default, the traceback on request
        if os.environ.get("RECSYS_DEBUG"):
            raise
        print(
            f"recsys: internal error: {type(e).__name__}: {e} (set RECSYS_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
