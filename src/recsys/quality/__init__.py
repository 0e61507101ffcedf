"""Data quality gate: checks over tables, a 0-100 score, JSON/HTML reports and metrics.

See ``recsys.quality.runner`` for the intended use in a pipeline step.
"""

from __future__ import annotations

from recsys.quality.baseline import Baseline, ColumnProfile, TableProfile, psi
from recsys.quality.checks import CHECKS, CheckResult, run_check
from recsys.quality.config import (
    CheckSpec,
    PsiConfig,
    QualityConfig,
    load_quality_config,
    parse_quality_config,
)
from recsys.quality.metrics import PushError, build_registry, exposition, push, write_textfile
from recsys.quality.report import render_html, write_html, write_json
from recsys.quality.runner import QualityReport, run_quality, weighted_score

__all__ = [
    "CHECKS",
    "Baseline",
    "CheckResult",
    "CheckSpec",
    "ColumnProfile",
    "PsiConfig",
    "PushError",
    "QualityConfig",
    "QualityReport",
    "TableProfile",
    "build_registry",
    "exposition",
    "load_quality_config",
    "parse_quality_config",
    "psi",
    "push",
    "render_html",
    "run_check",
    "run_quality",
    "weighted_score",
    "write_html",
    "write_json",
    "write_textfile",
]
