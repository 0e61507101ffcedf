"""The evaluation for people: a console table and an HTML page with a bar chart (no scripts).

Both read the ``comparison`` section the training flow writes (recsys.evaluation.compare): the
served chain, its fused recall and the baselines on the same users, with 95 % intervals.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

ORDER = ("served", "fused", "ease", "itemknn", "pop")
LABELS = {
    "served": "served chain",
    "fused": "fused recall",
    "ease": "EASE",
    "itemknn": "ItemKNN",
    "pop": "popularity",
}
COLUMNS = ("ndcg", "recall", "hit_rate", "mrr", "coverage")


def _methods(comparison: dict[str, Any]) -> list[str]:
    names = list(comparison["methods"])
    return [m for m in ORDER if m in names] + [m for m in names if m not in ORDER]


def _ci(entry: dict[str, Any], key: str) -> str:
    ci = entry.get(f"{key}_ci95")
    return f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""


def console_table(evaluation: dict[str, Any]) -> list[str]:
    comparison = evaluation["comparison"]
    ref = comparison.get("reference")
    k = max(comparison["ks"])
    lines = [
        f"{evaluation['protocol']} (relevant: {evaluation['positives']}), {comparison['users']} test users, "
        f"as of {evaluation['split'].get('as_of')}",
        f"{'method':<14}"
        + "".join(f"{c + '@' + str(k):>12}" for c in COLUMNS)
        + f"{'vs ' + (ref or '-'):>12}",
    ]
    for name in _methods(comparison):
        e = comparison["methods"][name]
        ratio = e.get(f"ndcg@{k}_vs_{ref}")
        cells = "".join(f"{e.get(f'{c}@{k}', float('nan')):>12.4f}" for c in COLUMNS)
        lines.append(f"{LABELS.get(name, name):<14}{cells}{('' if ratio is None else f'{ratio:.3f}x'):>12}")
    served = comparison["methods"].get("served", {})
    if ref and served.get(f"ndcg@{k}_vs_{ref}_ci95"):
        lo, hi = served[f"ndcg@{k}_vs_{ref}_ci95"]
        lines.append(f"served chain NDCG@{k} vs {LABELS.get(ref, ref)}: "
                     f"{served[f'ndcg@{k}_vs_{ref}']:.3f}x (95 % interval {lo:.3f} .. {hi:.3f})")  # fmt: skip
    return lines


def _bars(comparison: dict[str, Any], metric: str) -> str:
    names = _methods(comparison)
    values = [comparison["methods"][n].get(metric) or 0.0 for n in names]
    top = max([*values, *(comparison["methods"][n].get(f"{metric}_ci95", [0, 0])[1] for n in names)]) or 1.0
    width, bar_h, gap, left = 560, 22, 10, 120
    rows = []
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        y = i * (bar_h + gap)
        w = value / top * (width - left - 80)
        colour = "#2b6cb0" if name == "served" else "#a0aec0"
        rows.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{escape(LABELS.get(name, name))}</text>'
        )
        rows.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>')
        ci = comparison["methods"][name].get(f"{metric}_ci95")
        if ci:
            x0, x1 = (left + c / top * (width - left - 80) for c in ci)
            mid = y + bar_h / 2
            rows.append(f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{mid}" y2="{mid}" stroke="#1a202c"/>')
        rows.append(f'<text x="{left + w + 6:.1f}" y="{y + 16}">{value:.4f}</text>')
    height = len(names) * (bar_h + gap)
    return (f'<svg width="{width}" height="{height}" font-family="sans-serif" font-size="13" role="img" '
            f'aria-label="{escape(metric)} per method">' + "".join(rows) + "</svg>")  # fmt: skip


def write_page(evaluation: dict[str, Any], path: Path, title: str = "Recommendation quality") -> Path:
    comparison = evaluation["comparison"]
    ks = comparison["ks"]
    ref = comparison.get("reference")
    head = "".join(f"<th>{escape(c)}@{k}</th>" for k in ks for c in COLUMNS) + (
        f"<th>NDCG@{max(ks)} vs {escape(ref)}</th>" if ref else ""
    )
    body = []
    for name in _methods(comparison):
        e = comparison["methods"][name]
        cells = "".join(
            f"<td>{e.get(f'{c}@{k}', 0.0):.4f}<small>{escape(_ci(e, f'{c}@{k}'))}</small></td>"
            for k in ks
            for c in COLUMNS
        )
        ratio = e.get(f"ndcg@{max(ks)}_vs_{ref}")
        ratio_cell = f"<td>{'' if ratio is None else f'{ratio:.3f}x'}</td>" if ref else ""
        body.append(f"<tr><th>{escape(LABELS.get(name, name))}</th>{cells}{ratio_cell}</tr>")
    split = evaluation.get("split", {})
    params = "".join(
        f"<li>{escape(n)}: {escape(str(p))}</li>" for n, p in evaluation.get("baselines", {}).items()
    )
    charts = "".join(f"<h2>NDCG@{k}</h2>{_bars(comparison, f'ndcg@{k}')}" for k in ks)
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#1a202c}}table{{border-collapse:collapse}}
td,th{{border:1px solid #cbd5e0;padding:4px 8px;text-align:right}}small{{color:#718096;display:block}}</style>
</head><body><h1>{escape(title)}</h1>
<p>Protocol <b>{escape(evaluation["protocol"])}</b>, relevant: {escape(evaluation["positives"])};
{comparison["users"]} test users; training part as of {escape(str(split.get("as_of")))};
95 % bootstrap intervals over users ({comparison["resamples"]} resamples).</p>
{charts}
<h2>All metrics</h2><table><tr><th>method</th>{head}</tr>{"".join(body)}</table>
<h2>Baselines (tuned on the validation split)</h2><ul>{params}</ul>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
