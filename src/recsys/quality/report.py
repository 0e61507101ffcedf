"""JSON and self-contained HTML renderings of a quality report.

The HTML page is opened from pipeline artifacts (KFP UI, MLflow, a file browser) that may
have no network access, so it carries its own CSS and inline SVG and references nothing
external. Every value from the data goes through ``html.escape``.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from recsys.quality.base import CheckResult
from recsys.quality.runner import QualityReport

_MAX_DRIFT_CHARTS = 12  # the worst columns; a page with hundreds of feature histograms is unreadable
_PASS, _FAIL, _WARN = "#2e7d32", "#c62828", "#ef6c00"
_BASE_COLOR, _CURRENT_COLOR = "#90a4ae", "#1565c0"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #212121; }
h1 { margin-bottom: 0.2em; }
.badge { display: inline-block; padding: 0.2em 0.7em; border-radius: 4px; color: #fff; font-weight: bold; }
.pass { background: #2e7d32; } .fail { background: #c62828; }
.score { font-size: 2em; font-weight: bold; margin-right: 0.5em; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border: 1px solid #e0e0e0; padding: 0.35em 0.5em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
tr.failed td { background: #ffebee; }
code { font-size: 0.85em; white-space: pre-wrap; word-break: break-word; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5em; }
.muted { color: #757575; }
"""


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(report: QualityReport, path: Path) -> None:
    _atomic_write(path, json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")


def write_html(report: QualityReport, path: Path) -> None:
    _atomic_write(path, render_html(report))


def _compact(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, default=str) if value else ""


def _score_chart(checks: list[CheckResult]) -> str:
    """One horizontal bar per check: its score (0-1), coloured by pass/fail."""
    label_w, bar_w, row_h = 300, 320, 20
    height = row_h * len(checks) + 24
    parts = [
        f'<svg width="{label_w + bar_w + 60}" height="{height}" role="img" aria-label="score per check">'
    ]
    for i, c in enumerate(checks):
        y = i * row_h
        color = _PASS if c.passed else _FAIL
        name = c.name if len(c.name) <= 44 else c.name[:41] + "..."
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">{escape(name)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="{row_h - 6}" fill="#eeeeee"/>'
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w * c.score:.1f}" height="{row_h - 6}" '
            f'fill="{color}"><title>{escape(c.name)}: {c.score:.3f}</title></rect>'
            f'<text x="{label_w + bar_w + 6}" y="{y + 14}" font-size="12">{c.score:.2f}</text>'
        )
    axis_y = row_h * len(checks) + 14
    parts.append(
        f'<text x="{label_w}" y="{axis_y}" font-size="11" fill="#757575">0</text>'
        f'<text x="{label_w + bar_w}" y="{axis_y}" font-size="11" fill="#757575" '
        f'text-anchor="end">1</text></svg>'
    )
    return "".join(parts)


def _histogram_chart(title: str, d: dict[str, Any]) -> str:
    """Baseline (grey) vs current (blue) share per bin or category."""
    labels: list[str] = d.get("labels", [])
    base: list[float] = d.get("baseline", [])
    cur: list[float] = d.get("current", [])
    if not labels:
        return ""
    plot_h, group_w, pad = 120, 28, 30
    width = max(260, pad + group_w * len(labels) + 10)
    top = max([*base, *cur, 1e-9])
    color = {"fail": _FAIL, "warn": _WARN}.get(str(d.get("level")), _PASS)
    psi = d.get("psi")
    psi_text = f"PSI {psi:.4f}" if isinstance(psi, int | float) else "PSI n/a"
    parts = [
        f'<figure><svg width="{width}" height="{plot_h + 40}" role="img" aria-label="{escape(title)}">',
        f'<text x="{pad}" y="12" font-size="12" font-weight="bold">{escape(title)}</text>',
        f'<text x="{width - 4}" y="12" font-size="12" text-anchor="end" fill="{color}">{psi_text}</text>',
        f'<line x1="{pad}" y1="{plot_h + 20}" x2="{width - 4}" y2="{plot_h + 20}" stroke="#bdbdbd"/>',
    ]
    for i, label in enumerate(labels):
        x = pad + i * group_w
        for j, (share, fill) in enumerate(((base[i], _BASE_COLOR), (cur[i], _CURRENT_COLOR))):
            h = plot_h * share / top
            parts.append(
                f'<rect x="{x + 2 + j * 12}" y="{plot_h + 20 - h:.1f}" width="11" height="{h:.1f}" '
                f'fill="{fill}"><title>{escape(label)}: {"baseline" if j == 0 else "current"} '
                f"{share:.4f}</title></rect>"
            )
    parts.append(
        f'<text x="{pad}" y="{plot_h + 34}" font-size="10" fill="#757575">'
        f'<tspan fill="{_BASE_COLOR}">&#9632;</tspan> baseline '
        f'<tspan fill="{_CURRENT_COLOR}">&#9632;</tspan> current (hover a bar for its bin)</text>'
    )
    parts.append("</svg></figure>")
    return "".join(parts)


def _drift_section(checks: list[CheckResult]) -> str:
    charts = [
        (float(d.get("psi") or 0.0), f"{c.table}.{column}", d)
        for c in checks
        if c.type == "drift"
        for column, d in c.detail.items()
    ]
    if not charts:
        return '<p class="muted">No drift comparisons (no baseline yet, or no drift checks).</p>'
    charts.sort(key=lambda t: t[0], reverse=True)
    shown = "".join(_histogram_chart(title, d) for _, title, d in charts[:_MAX_DRIFT_CHARTS])
    note = (
        f'<p class="muted">Showing the {_MAX_DRIFT_CHARTS} highest PSI of {len(charts)} columns.</p>'
        if len(charts) > _MAX_DRIFT_CHARTS
        else ""
    )
    return f'{note}<div class="charts">{shown}</div>'


def _check_rows(checks: list[CheckResult]) -> str:
    rows = []
    for c in checks:
        status = "SKIP" if c.skipped else "PASS" if c.passed else "FAIL"
        cls = "pass" if c.passed else "fail"
        rows.append(
            f'<tr class="{"" if c.passed else "failed"}">'
            f'<td><span class="badge {cls}">{status}</span></td>'
            f"<td>{escape(c.name)}</td><td>{escape(c.table)}</td><td>{escape(c.column or '')}</td>"
            f"<td>{escape(c.type)}</td><td>{c.weight:g}</td><td>{c.score:.2f}</td>"
            f"<td><code>{escape(_compact(c.observed))}</code></td>"
            f"<td><code>{escape(_compact(c.expected))}</code></td>"
            f"<td>{escape(c.message)}</td></tr>"
        )
    return "".join(rows)


def render_html(report: QualityReport) -> str:
    verdict = "PASS" if report.passed else "FAIL"
    cls = "pass" if report.passed else "fail"
    failing = report.failing
    failing_text = "Failing: " + ", ".join(escape(c.name) for c in failing) if failing else "All checks pass."
    as_of = (report.as_of or report.run_at).isoformat()
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Data quality: {report.score:.2f} ({verdict})</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Data quality report</h1>
<p class="muted">Run at {escape(report.run_at.isoformat())} UTC, as of {escape(as_of)} UTC</p>
<p><span class="score">{report.score:.2f}</span> / 100, threshold {report.threshold:g}
<span class="badge {cls}">{verdict}</span></p>
<p>{len(report.checks)} checks, {len(failing)} failing. {failing_text}</p>
<h2>Score per check</h2>
{_score_chart(report.checks)}
<h2>Checks</h2>
<table>
<thead><tr><th>Status</th><th>Check</th><th>Table</th><th>Column</th><th>Type</th><th>Weight</th>
<th>Score</th><th>Observed</th><th>Expected</th><th>Message</th></tr></thead>
<tbody>{_check_rows(report.checks)}</tbody>
</table>
<h2>Drift: baseline vs current</h2>
{_drift_section(report.checks)}
</body>
</html>
"""
