"""The chart's alert rules and dashboards: checked and unit-tested by the real promtool, and every
metric they read is one the project exports.

Each alert gets a firing case and a quiet case in ``promtool test rules``: the rules come from the
rendered PrometheusRule (so thresholds and the experiment's shares are the values'), the test
file is built here from the cases below."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from recsys.evaluation.experiments import sample_ratio_mismatch
from tests.deploy.chart import CHART, find, objects, render, tool

RUNBOOK = "https://github.com/recsys/recsys/blob/main/docs/OPERATIONS_SOP.md"
OK, ERR = (
    'recommendation_requests_total{status="ok",variant="control"}',
    'recommendation_requests_total{status="error",variant="control"}',
)
BUCKET = "recommendation_latency_seconds_bucket"


def latency(per_minute: dict[str, int]) -> list[dict[str, str]]:
    """Cumulative latency buckets growing by ``per_minute`` requests each minute."""
    return [
        {"series": f'{BUCKET}{{le="{le}",variant="control"}}', "values": f"0+{n}x60"}
        for le, n in per_minute.items()
    ]


def overlap(per_minute: dict[str, int]) -> list[dict[str, str]]:
    name = "recommendation_shadow_topk_overlap_bucket"
    return [{"series": f'{name}{{le="{le}"}}', "values": f"0+{n}x90"} for le, n in per_minute.items()]


def variants(control: int, more_itemcf: int | None) -> list[dict[str, str]]:
    series = [{"series": OK, "values": f"0+{control}x120"}]
    if more_itemcf is not None:
        series.append({"series": OK.replace("control", "more_itemcf"), "values": f"0+{more_itemcf}x120"})
    return series


# (alert, case, input series, eval time, expected alerts: (labels, description) or none)
CASES: list[tuple[str, str, list[dict[str, str]], str, list[tuple[dict[str, str], str]]]] = [
    (
        "RecsysHighErrorRate",
        "5 % errors",
        [{"series": OK, "values": "0+100x30"}, {"series": ERR, "values": "0+5x30"}],
        "20m",
        [({"severity": "critical"}, "4.762% of requests failed over 5 minutes.")],
    ),
    (
        "RecsysHighErrorRate",
        "0.5 % errors",
        [{"series": OK, "values": "0+200x30"}, {"series": ERR, "values": "0+1x30"}],
        "20m",
        [],
    ),
    (
        "RecsysHighLatencyP95",
        "p95 97 ms",
        latency({"0.025": 10, "0.05": 20, "0.1": 100, "+Inf": 100}),
        "30m",
        [({"severity": "warning"}, "p95 is 96.88ms (transformer, end to end).")],
    ),
    (
        "RecsysHighLatencyP95",
        "p95 24 ms",
        latency({"0.025": 98, "0.05": 99, "0.1": 100, "+Inf": 100}),
        "30m",
        [],
    ),
    (
        "RecsysHighDegradationRate",
        "5 % degraded",
        [
            {"series": OK, "values": "0+100x30"},
            {
                "series": 'recommendation_degraded_total{level="1",reason="store_fallback"}',
                "values": "0+5x30",
            },
        ],
        "20m",
        [
            (
                {"severity": "warning"},
                "5% of answers degraded; recommendation_degraded_total by level and reason says why.",
            )
        ],
    ),
    (
        "RecsysHighDegradationRate",
        "1 % degraded",
        [
            {"series": OK, "values": "0+100x30"},
            {"series": 'recommendation_degraded_total{level="3",reason="timeout"}', "values": "0+1x30"},
        ],
        "20m",
        [],
    ),
    (
        "RecsysCircuitOpen",
        "open for 5 minutes",
        [
            {"series": 'recommendation_circuit_state{target="champion",pod="t-1"}', "values": "1x10"},
            {"series": 'recommendation_circuit_state{target="champion",pod="t-2"}', "values": "0x10"},
        ],
        "5m",
        [
            (
                {"severity": "warning", "target": "champion"},
                "The transformer stopped calling champion and serves degraded answers.",
            )
        ],
    ),
    (
        "RecsysCircuitOpen",
        "half open is not open",
        [{"series": 'recommendation_circuit_state{target="champion"}', "values": "2x10"}],
        "5m",
        [],
    ),
    (
        "RecsysPredictorErrors",
        "10 % errors",
        [
            {"series": 'recsys_predictor_predictions_total{model="recsys",status="ok"}', "values": "0+90x30"},
            {
                "series": 'recsys_predictor_predictions_total{model="recsys",status="error"}',
                "values": "0+10x30",
            },
        ],
        "20m",
        [({"severity": "critical"}, "10% of scoring requests failed.")],
    ),
    (
        "RecsysPredictorErrors",
        "none",
        [{"series": 'recsys_predictor_predictions_total{model="recsys",status="ok"}', "values": "0+90x30"}],
        "20m",
        [],
    ),
    (
        "RecsysSchemaMismatch",
        "one refused request",
        [
            {
                "series": 'recsys_predictor_schema_mismatches_total{model="recsys"}',
                "values": "0 0 0 0 0 1 1 1 1 1",
            }
        ],
        "8m",
        [
            (
                {"severity": "critical", "model": "recsys"},
                "Transformer and predictor serve bundles with different feature schemas; "
                "ranking is degraded to recall order.",
            )
        ],
    ),
    (
        "RecsysSchemaMismatch",
        "none",
        [{"series": 'recsys_predictor_schema_mismatches_total{model="recsys"}', "values": "0x30"}],
        "20m",
        [],
    ),
    (
        "RecsysExposuresDropped",
        "dropped",
        [{"series": "recommendation_exposures_dropped_total", "values": "0 0 3 3 3"}],
        "4m",
        [
            (
                {"severity": "warning"},
                "The exposure log queue was full: evaluation and experiment analysis miss records.",
            )
        ],
    ),
    (
        "RecsysExposuresDropped",
        "none",
        [{"series": "recommendation_exposures_dropped_total", "values": "0x30"}],
        "20m",
        [],
    ),
    (
        "RecsysExperimentSampleRatioMismatch",
        "60/40 on a 50/50 split",
        variants(60, 40),
        "90m",
        [({"severity": "warning"}, "SRM")],
    ),
    (
        "RecsysExperimentSampleRatioMismatch",
        "one variant gets nothing",
        variants(100, None),
        "90m",
        [({"severity": "warning"}, "SRM")],
    ),
    ("RecsysExperimentSampleRatioMismatch", "51/49 is chance", variants(51, 49), "90m", []),
    ("RecsysExperimentSampleRatioMismatch", "too few requests", variants(12, 4), "90m", []),
    (
        "RecsysShadowDiverges",
        "median overlap 0.35",
        overlap({"0.3": 40, "0.4": 60, "0.5": 70, "1.0": 100, "+Inf": 100}),
        "80m",
        [({"severity": "info"}, "Median top-k overlap 35%: review the shadow model before a canary.")],
    ),
    (
        "RecsysShadowDiverges",
        "median overlap 0.85",
        overlap({"0.3": 0, "0.4": 2, "0.5": 5, "0.8": 20, "0.9": 80, "1.0": 100, "+Inf": 100}),
        "80m",
        [],
    ),
    (
        "RecsysDataQualityFailed",
        "gate failed",
        [{"series": 'recsys_data_quality_passed{job="recsys-quality"}', "values": "1 1 0 0"}],
        "3m",
        [
            (
                {"severity": "warning"},
                "The pipeline stopped before training; serving keeps the previous bundle.",
            )
        ],
    ),
    (
        "RecsysDataQualityFailed",
        "gate passed",
        [{"series": "recsys_data_quality_passed", "values": "1x5"}],
        "3m",
        [],
    ),
    (
        "RecsysDataQualityStale",
        "last run 37 h ago",
        [{"series": "recsys_data_quality_last_run_timestamp_seconds", "values": "0x2300"}],
        "37h",
        [
            (
                {"severity": "warning"},
                "The training pipeline has not run (or not pushed its metrics): "
                "features and models grow stale.",
            )
        ],
    ),
    (
        "RecsysDataQualityStale",
        "fresh run",
        [{"series": "recsys_data_quality_last_run_timestamp_seconds", "values": "0+60x2300"}],
        "37h",
        [],
    ),
]


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    rule = find(objects(render("shadow.enabled=true")), "PrometheusRule", "recsys")
    return {"groups": rule["spec"]["groups"]}


def rule_of(rules: dict[str, Any], alert: str) -> dict[str, Any]:
    return next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == alert)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True)


def test_rules_pass_promtool_check(rules: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 11 rules found" in done.stdout


def test_every_alert_has_a_firing_and_a_quiet_case(rules: dict[str, Any]) -> None:
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    firing = {alert for alert, _, _, _, expected in CASES if expected}
    quiet = {alert for alert, _, _, _, expected in CASES if not expected}
    assert alerts == firing == quiet


def test_alerts_fire_when_they_should_and_only_then(rules: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    tests = []
    for alert, case, series, at, expected in CASES:
        rule = rule_of(rules, alert)
        exp = []
        for labels, description in expected:
            annotations = dict(rule["annotations"])
            if alert == "RecsysExperimentSampleRatioMismatch":
                description = annotations["description"]  # its $value is checked below
            annotations["description"] = description
            annotations["summary"] = annotations["summary"].replace(
                "{{ $labels.target }}", labels.get("target", "")
            )
            exp.append({"exp_labels": labels, "exp_annotations": annotations})
        tests.append(
            {
                "name": f"{alert}: {case}",
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": exp}],
            }
        )
    # the SRM description carries the chi-square, which must be the offline evaluation's
    # (sample_ratio_mismatch) for the same hour: 100 requests a minute, 60/40 or all on one variant
    srm = rule_of(rules, "RecsysExperimentSampleRatioMismatch")["annotations"]["description"]
    shares = {"control": 0.5, "more_itemcf": 0.5}
    for case, counts in [("60/40 on a 50/50 split", {"control": 3600, "more_itemcf": 2400}),
                         ("one variant gets nothing", {"control": 6000})]:  # fmt: skip
        chi2, _ = sample_ratio_mismatch(counts, shares)
        test = next(t for t in tests if t["name"].endswith(case))
        expected = srm.replace('{{ $value | printf "%.1f" }}', f"{chi2:.1f}")
        test["alert_rule_test"][0]["exp_alerts"][0]["exp_annotations"]["description"] = expected
    path = tmp_path / "alerts_test.yaml"
    path.write_text(
        yaml.safe_dump(
            {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False
        )
    )
    done = promtool("test", "rules", str(path))
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


@pytest.mark.parametrize("n", range(2, 11))
def test_srm_threshold_is_the_chi_square_critical_value_at_p_0_001(n: int, tmp_path: Path) -> None:
    from scipy import stats

    values = tmp_path / "values.yaml"
    variants = [{"name": f"v{i}", "share": 1 / n} for i in range(n)]
    values.write_text(yaml.safe_dump({"experiments": {"layer": "l", "salt": "s", "variants": variants}}))
    # 1/n does not always add up to exactly 1 in floating point; the chart allows 1e-6
    rule = find(objects(render(values=values)), "PrometheusRule", "recsys")
    expr = next(
        r
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r.get("alert") == "RecsysExperimentSampleRatioMismatch"
    )
    threshold = float(re.search(r"\) > ([0-9.]+)\n", expr["expr"]).group(1))
    assert threshold == round(float(stats.chi2.isf(0.001, n - 1)), 2)
    assert expr["expr"].count("variant=") == n


def test_a_wrong_expectation_fails_promtool(rules: dict[str, Any], tmp_path: Path) -> None:
    """The check above can fail: the quiet 0.5 % case claimed to fire is refused."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    alert, _, series, at, _ = next(c for c in CASES if c[1] == "0.5 % errors")
    test = {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": {"severity": "critical"}}]}
        ],
    }
    path = tmp_path / "wrong_test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": [test]}))
    assert promtool("test", "rules", str(path)).returncode != 0


# -- every metric a rule or a panel reads is one the project exports -----------------------------

METRIC = re.compile(r"\b((?:recommendation|recsys)_[a-z0-9_]+)")


def exported_names() -> set[str]:
    """Sample names of the transformer's, the predictor's and the quality gate's metrics, read
    from their prometheus_client registries."""
    from prometheus_client import REGISTRY

    import inference.metrics  # noqa: F401 - registers the predictor's metrics
    import inference.transformer_metrics  # noqa: F401 - registers the transformer's
    from recsys.quality.base import CheckResult
    from recsys.quality.metrics import build_registry
    from recsys.quality.runner import QualityReport

    drift = CheckResult(
        name="drift",
        table="events",
        type="drift",
        columns=["price"],
        weight=1.0,
        passed=True,
        score=1.0,
        observed={},
        expected={},
        message="",
        detail={"price": {"psi": 0.01}},
    )
    report = QualityReport(score=99.0, threshold=97.0, checks=[drift], run_at=datetime.now(UTC))
    names = set()
    for registry in (REGISTRY, build_registry(report)):
        for family in registry.collect():
            names.add(family.name)
            kind = family.type
            if kind == "counter":
                names.add(family.name + "_total")
            elif kind == "histogram":
                names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
    return names


def referenced(rules: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in METRIC.findall(rule["expr"]):
                found.setdefault(name, set()).add(f"rule {rule.get('alert')}")
    for path in sorted((CHART / "files" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                for name in METRIC.findall(target["expr"]):
                    found.setdefault(name, set()).add(f"{path.name}: {panel['title']}")
    return found


def test_rules_and_dashboards_read_only_exported_metrics(rules: dict[str, Any]) -> None:
    used = referenced(rules)
    exported = exported_names()
    assert len(used) >= 25  # the check below looked at something
    assert {name: where for name, where in used.items() if name not in exported} == {}


def test_dashboards_are_grafana_json_with_unique_panel_ids() -> None:
    paths = sorted((CHART / "files" / "dashboards").glob("*.json"))
    assert [p.name for p in paths] == ["pipeline.json", "serving.json"]
    for path in paths:
        board = json.loads(path.read_text())
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and board["uid"].startswith("recsys-")
        assert all(t["expr"] for p in board["panels"] for t in p.get("targets", []))
    maps = [d for d in objects(render()) if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"]]
    assert {m["metadata"]["labels"]["grafana_dashboard"] for m in maps} == {"1"}
    for m in maps:
        ((name, text),) = m["data"].items()
        assert json.loads(text) == json.loads((CHART / "files" / "dashboards" / name).read_text())
