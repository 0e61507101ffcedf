"""What the local runner reports: one progress detail per step and the run summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recsys.db import redact
from recsys.settings import Settings


def step_detail(step: str, result: dict[str, Any] | None) -> str:
    if not result:
        return ""
    if step == "extract_load":
        per_table = ", ".join(f"{t} {v['rows_extracted']}" for t, v in result["tables"].items())
        return f"{result['rows_extracted']} rows extracted ({per_table})"
    if step == "clean":
        t = result["totals"]
        return f"{t['kept']} kept, {t['fixed']} fixed, {t['dropped']} dropped"
    if step == "features":
        return (
            f"{result['users']} users, {result['items']} items, {result['ranker_features']} ranker features"
        )
    if step == "quality_gate":
        verdict = "passed" if result["passed"] else f"FAILED ({len(result['failing'])} failing checks)"
        return f"score {result['score']} / {result['threshold']} {verdict}"
    if step == "train":
        m = result["metrics"]
        return (
            f"{result['objective']} ranker, {result['ranker_features']} features, holdout AUC "
            f"{m.get('holdout_auc', float('nan')):.3f}, ONNX diff {result['onnx_max_abs_diff']:.1e}"
        )
    if step == "evaluate":
        ratio = result.get("ndcg_at_20_vs_reference")
        versus = f", {ratio:.3f}x {result['reference']}" if ratio is not None else ""
        return (
            f"served NDCG@20 {result['ndcg_at_20']:.4f}{versus}, Recall@20 {result['recall_at_20']:.4f} "
            f"({result['protocol']}, {result['users']} users)"
        )
    if step == "register":
        verdict = "champion" if result["promoted"] else "challenger"
        return f"{result['model']} v{result['model_version']} -> {verdict} ({result['reason']})"
    if step == "sync_store":
        return f"version {result['version']} {result['action']} in {result['store']}"
    return ""


def training_summary(
    run_id: str,
    settings: Settings,
    results: dict[str, dict[str, Any]],
    steps: dict[str, dict[str, Any]],
    run_dir: Path,
    seconds: float,
) -> dict[str, Any]:
    extract, clean = results.get("extract_load") or {}, results.get("clean") or {}
    gate, sync = results.get("quality_gate") or {}, results.get("sync_store")
    status = "succeeded" if not gate or gate.get("passed") else "stopped_at_quality_gate"
    return {
        "run_id": run_id,
        "status": status,
        "source_db": redact(settings.source_db_url),
        "data_dir": str(settings.data_dir.resolve()),
        "duration_seconds": seconds,
        "steps": steps,
        "extracted": {
            "rows": extract.get("rows_extracted", 0),
            "tables": {t: v["rows_extracted"] for t, v in extract.get("tables", {}).items()},
        },
        "cleaned": {
            **clean.get("totals", {}),
            "tables": {t: {k: v[k] for k in ("input", "kept")} for t, v in clean.get("tables", {}).items()},
            "output": clean.get("cleaned_dir"),
        },
        "features": results.get("features"),
        "training": results.get("train"),
        "evaluation": results.get("evaluate"),
        "registered": results.get("register"),
        "quality": gate or None,
        "synced": sync,
        "artifacts": {
            "run_metrics": extract.get("metrics_json"),
            "cleaning_report": clean.get("report_json"),
            "quality_report": gate.get("report_html"),
            "log": str(run_dir / "pipeline.log"),
        },
    }


def gate_failure(summary: dict[str, Any]) -> str | None:
    """The one-line reason a run stopped at the quality gate, or None."""
    gate = summary.get("quality") or {}
    if not gate or gate.get("passed"):
        return None
    failing = "; ".join(f"{c['name']}: {c['message']}" for c in gate["failing"])
    return (
        f"stopped at the quality gate: score {gate['score']} < {gate['threshold']}; "
        f"failing: {failing}; report: {gate['report_html']}"
    )
