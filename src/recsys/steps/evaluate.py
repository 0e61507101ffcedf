"""Step evaluate: the offline evaluation plus online experiment metrics into summary.json.

Offline: the train step's holdout evaluation (per channel, fused, end to end, baseline) and the
ranker's AUC/logloss. Online: CTR/CVR/GMV per experiment variant from the serving exposure logs
(``<data_dir>/exposures/*.jsonl``) joined with behaviour events (the cleaned events table, or a
Matomo export at ``<data_dir>/matomo/visits.json``), with confidence intervals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.evaluation.experiments import events_from_matomo, read_exposures, variant_report
from recsys.evaluation.summary import write_summary
from recsys.steps.clean import read_cleaned
from recsys.steps.common import TRAINING_FILE, read_run, run_record_path, write_json


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


def evaluate_step(
    *, cleaned_dir: Path, model_dir: Path, data_dir: Path, summary_json: Path
) -> dict[str, Any]:
    run_id, _ = read_run(cleaned_dir)
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
    e2e = training["evaluation"]["end_to_end"]
    result = {
        "run_id": run_id,
        "holdout_auc": training["metrics"].get("holdout_auc"),
        "ndcg_at_20": e2e.get("ndcg@20"),
        "recall_at_20": e2e.get("recall@20"),
        "summary": str(data_dir / "evaluation" / "summary.json"),
        "experiments": sections["experiments"]["status"],
        "generated_at": document["generated_at"],
    }
    write_json(run_record_path(data_dir, run_id, "evaluate"), result)
    return result
