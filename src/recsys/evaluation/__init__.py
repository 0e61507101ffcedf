"""Evaluation: offline ranking metrics, time-based holdouts, online experiment reports, the summary file."""

from __future__ import annotations

from recsys.evaluation.experiments import (
    DEFAULT_WINDOW,
    events_from_matomo,
    read_exposures,
    sample_ratio_mismatch,
    two_proportion_p_value,
    variant_report,
    wilson_interval,
)
from recsys.evaluation.metrics import (
    METRICS,
    Metric,
    auc,
    catalogue_coverage,
    evaluate_lists,
    evaluate_scores,
    hit_rate_at_k,
    logloss,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from recsys.evaluation.split import global_time_split, per_user_last_n_split
from recsys.evaluation.summary import SCHEMA_VERSION, SUMMARY_PATH, read_summary, write_summary

__all__ = [
    "DEFAULT_WINDOW",
    "METRICS",
    "SCHEMA_VERSION",
    "SUMMARY_PATH",
    "Metric",
    "auc",
    "catalogue_coverage",
    "evaluate_lists",
    "evaluate_scores",
    "events_from_matomo",
    "global_time_split",
    "hit_rate_at_k",
    "logloss",
    "mrr_at_k",
    "ndcg_at_k",
    "per_user_last_n_split",
    "precision_at_k",
    "read_exposures",
    "read_summary",
    "recall_at_k",
    "sample_ratio_mismatch",
    "two_proportion_p_value",
    "variant_report",
    "wilson_interval",
    "write_summary",
]
