"""``recsys evaluate``: the served chain beside Pop, ItemKNN and EASE on one protocol's split."""

from __future__ import annotations

from typing import Annotated

import typer

from recsys.cli.common import DataDirOpt, echo_json, settings_from


def evaluate(
    ctx: typer.Context,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="last-n:N (each user's last N items are the test part) or time-cut:Q (everything after "
            "the Q quantile of the interaction times) or auto (whichever of time-cut:0.9 and last-n:10 "
            "leaves more test users) [default: evaluation.protocol of the settings, auto].",
        ),
    ] = None,
    positive_min_value: Annotated[
        float | None,
        typer.Option(
            "--positive-min-value",
            help="A test interaction is relevant when its value is at least this (e.g. 4 for ratings "
            "1-5) [default: clicks, add-to-carts and purchases are].",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="ISO time or 'latest' (the newest event) [default: the run's as-of time]."
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Train the chain on the newest run's data split by the protocol, and score the lists it
    serves beside popularity, ItemKNN and EASE (lambda tuned on a validation split) fitted in the
    same run on the same users: Recall, NDCG, HitRate, MRR and coverage at 10 and 20 with 95 %
    bootstrap intervals, into <data-dir>/evaluation/<protocol>/ (summary.json, report.html)."""
    from recsys.evaluation.page import console_table
    from recsys.steps.evaluate import evaluate_latest

    settings = settings_from(ctx, data_dir=data_dir)
    result = evaluate_latest(settings, protocol=protocol, positive_min_value=positive_min_value, as_of=as_of)
    evaluation = result.pop("evaluation")
    if as_json:
        echo_json({**result, "comparison": evaluation["comparison"]})
        return
    for line in console_table(evaluation):
        typer.echo(line)
    typer.echo(f"summary: {result['summary']}")
    typer.echo(f"report:  {result['report_html']}  ({result['seconds']}s)")
