"""Step evaluate: the offline evaluation plus online experiment metrics into summary.json.

Offline: the train step's evaluation (the served chain beside its fused recall, every channel
and the baselines on the protocol's test users, with bootstrap intervals; recsys.ranking.flow)
and the ranker's AUC/logloss, also as an HTML page with a bar chart.

Online: CTR/CVR/GMV per experiment variant from the serving exposure logs
(``<data_dir>/exposures/*.jsonl``) joined with behaviour events (the cleaned events table, or a
Matomo export at ``<data_dir>/matomo/visits.json``), with confidence intervals.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from recsys.errors import InvalidInput, PipelineError
from recsys.evaluation.experiments import events_from_matomo, read_exposures, variant_report
from recsys.evaluation.page import write_page
from recsys.evaluation.summary import write_summary
from recsys.steps.clean import read_cleaned
from recsys.steps.common import (
    RUN_FILE,
    TRAINING_FILE,
    Run,
    parse_time,
    read_run,
    run_record_path,
    write_json,
)
from recsys.steps.extract import LATEST, check_as_of

if TYPE_CHECKING:  # the pipeline's evaluate step need not import the settings' dependencies
    from recsys.settings import Settings


def experiment_section(data_dir: Path, cleaned_dir: Path) -> dict[str, Any]:
    logs = sorted((data_dir / "exposures").glob("*.jsonl")) if (data_dir / "exposures").exists() else []
    if not logs:
        return {"status": "no exposure logs yet", "logs": 0}
    exposures = pd.concat([read_exposures(p) for p in logs], ignore_index=True)
    matomo = data_dir / "matomo" / "visits.json"
    if matomo.exists():
        events, source = events_from_matomo(json.loads(matomo.read_text())), "matomo"
    else:
        events, source = read_cleaned(cleaned_dir)["events"], "events table"
    report = variant_report(exposures, events)
    return {"status": "ok", "logs": len(logs), "events_source": source, **report}


def headline(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The served chain's NDCG/Recall@20 and its NDCG@20 ratio to the reference baseline."""
    comparison = evaluation["comparison"]
    served, ref = comparison["methods"]["served"], comparison.get("reference")
    k = 20 if "ndcg@20" in served else max(comparison["ks"])
    return {
        "protocol": evaluation["protocol"],
        "users": comparison["users"],
        f"ndcg_at_{k}": served[f"ndcg@{k}"],
        f"recall_at_{k}": served[f"recall@{k}"],
        "reference": ref,
        f"ndcg_at_{k}_vs_reference": served.get(f"ndcg@{k}_vs_{ref}"),
        f"ndcg_at_{k}_vs_reference_ci95": served.get(f"ndcg@{k}_vs_{ref}_ci95"),
        f"reference_ndcg_at_{k}": comparison["methods"][ref][f"ndcg@{k}"] if ref else None,
    }


def evaluate_step(
    *, cleaned_dir: Path, model_dir: Path, data_dir: Path, summary_json: Path, report_html: Path | None = None
) -> dict[str, Any]:
    run_id = read_run(cleaned_dir).run_id
    training = json.loads((model_dir / TRAINING_FILE).read_text())
    sections = {
        "run_id": run_id,
        "ranker": {k: v for k, v in training["metrics"].items() if not k.startswith("e2e_")},
        "offline": training["evaluation"],
        "channels": training["channels"],
        "experiments": experiment_section(data_dir, cleaned_dir),
    }
    document = write_summary(summary_json, sections)
    # the seed's well-known path: the latest evaluation of this data directory
    write_summary(data_dir / "evaluation" / "summary.json", sections)
    page = write_page(training["evaluation"], data_dir / "evaluation" / "report.html")
    if report_html is not None:
        write_page(training["evaluation"], report_html)
    result = {
        "run_id": run_id,
        "holdout_auc": training["metrics"].get("holdout_auc"),
        **headline(training["evaluation"]),
        "summary": str(data_dir / "evaluation" / "summary.json"),
        "report_html": str(page),
        "experiments": sections["experiments"]["status"],
        "generated_at": document["generated_at"],
    }
    write_json(run_record_path(data_dir, run_id, "evaluate"), result)
    return result


def latest_cleaned(data_dir: Path) -> tuple[Path, Run]:
    """The cleaned tables of the newest pipeline run that still has them."""
    runs = (
        sorted((data_dir / "runs").glob("*/clean.json"), reverse=True) if (data_dir / "runs").exists() else []
    )
    for record in runs:
        cleaned = Path(json.loads(record.read_text()).get("cleaned_dir", ""))
        if (cleaned / RUN_FILE).exists():
            return cleaned, read_run(cleaned)
    raise PipelineError(
        f"evaluate: no cleaned data under {data_dir}: run `recsys pipeline run --local` first"
    )


def evaluate_latest(settings: Settings, *, protocol: str | None, positive_min_value: float | None,
                    as_of: str | None) -> dict[str, Any]:  # fmt: skip
    """``recsys evaluate``: the served chain trained and measured on the newest run's cleaned data
    with ``protocol`` (default: the configured one), beside the baselines; summary and page under
    ``<data_dir>/evaluation/<protocol>/``. Stores nothing else: no bundle, no registry entry."""
    from recsys.evaluation.protocols import choices
    from recsys.features.registry import load_registry
    from recsys.ranking.flow import train_and_evaluate
    from recsys.recall.config import load_recall_config

    updates: dict[str, Any] = {}
    if protocol is not None:
        choices(protocol, "--protocol")
        updates["protocol"] = protocol
    if positive_min_value is not None:
        updates["positive_min_value"] = positive_min_value
    eval_cfg = settings.evaluation.model_copy(update=updates)
    as_of_text = check_as_of(as_of)
    data_dir = settings.data_dir.resolve()
    cleaned, run = latest_cleaned(data_dir)
    tables = read_cleaned(cleaned)
    if as_of_text == LATEST:
        when = pd.to_datetime(tables["events"]["ts"]).max()
        if pd.isna(when):
            raise InvalidInput("--as-of latest: the cleaned data has no events")
        when = when.to_pydatetime()
    elif as_of_text:
        when = parse_time(as_of_text, "--as-of")
    else:
        when = run.as_of
    started = time.perf_counter()
    result = train_and_evaluate(
        tables,
        when,
        load_registry(settings.feature_registry),
        load_recall_config(settings.recall_config),
        settings.ranking,
        settings.training,
        settings.chain,
        eval_cfg,
    )
    seconds = round(time.perf_counter() - started, 2)
    out = data_dir / "evaluation" / result.evaluation["protocol"].replace(":", "-")
    sections = {
        "run_id": run.run_id,
        "as_of": when.isoformat(),
        "ranker": {k: v for k, v in result.metrics.items() if not k.startswith("e2e_")},
        "offline": result.evaluation,
        "seconds": seconds,
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
    }
    write_summary(out / "summary.json", sections)
    write_page(result.evaluation, out / "report.html")
    return {**headline(result.evaluation), "as_of": when.isoformat(), "seconds": seconds,
            "holdout_auc": result.metrics.get("holdout_auc"), "summary": str(out / "summary.json"),
            "report_html": str(out / "report.html"), "evaluation": result.evaluation}  # fmt: skip
