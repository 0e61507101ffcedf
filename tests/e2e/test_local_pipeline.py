"""End to end through the CLI: generate -> pipeline run --local (kfp.local) -> incremental runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from recsys.contracts import items
from recsys.db import create_engine

pytestmark = pytest.mark.slow


# a small marketplace: 14 days, so the training windows shrink to fit (holdout 2, valid 2, train 6)
PIPELINE_STEPS = [
    "extract_load",
    "clean",
    "features",
    "quality_gate",
    "train",
    "evaluate",
    "register",
    "sync_store",
]
SMALL_WINDOWS: dict[str, str] = {}


def recsys(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recsys", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **SMALL_WINDOWS},
    )


def run_json(data_dir: Path) -> dict:
    proc = recsys("pipeline", "run", "--local", "--json", "--data-dir", str(data_dir), cwd=data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # --json: one object, nothing else on stdout
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("e2e")
    proc = recsys(
        "data",
        "generate",
        "--users",
        "300",
        "--items",
        "120",
        "--days",
        "14",
        "--seed",
        "7",
        "--data-dir",
        str(d),
        cwd=d,
    )
    assert proc.returncode == 0, proc.stderr
    return d


def test_generate_run_rerun_and_update(data_dir: Path) -> None:
    engine = create_engine(f"sqlite:///{data_dir / 'source.db'}")
    with engine.connect() as conn:
        source_rows = {
            t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one()
            for t in ("users", "items", "orders", "events")
        }

    first = run_json(data_dir)
    assert first["status"] == "succeeded"
    assert first["extracted"]["tables"] == source_rows
    assert list(first["steps"]) == PIPELINE_STEPS  # in pipeline order
    cleaned = first["cleaned"]
    assert cleaned["kept"] + cleaned["dropped"] == cleaned["input"] == sum(source_rows.values())
    assert cleaned["dropped"] > 0 and cleaned["fixed"] > 0  # the generator's dirty rows
    out = Path(cleaned["output"])
    parts = sorted(out.glob("events/dt=*/part-0.parquet"))
    assert len(parts) >= 5
    assert sum(pq.read_table(p).num_rows for p in out.glob("*/dt=*/part-0.parquet")) == cleaned["kept"]
    run_metrics = json.loads(Path(first["artifacts"]["run_metrics"]).read_text())
    assert run_metrics["tables"]["events"]["watermark_lag_seconds"] is not None
    report = json.loads(Path(first["artifacts"]["cleaning_report"]).read_text())
    assert report["totals"]["kept"] == cleaned["kept"]
    assert first["features"]["ranker_features"] >= 70
    assert first["quality"]["passed"] and first["quality"]["score"] >= 97
    assert Path(first["quality"]["report_html"]).exists()
    assert first["training"]["onnx_max_abs_diff"] <= 1e-5
    assert first["training"]["metrics"]["holdout_auc"] > 0.6
    assert first["registered"]["promoted"] and first["registered"]["model_version"] == "1"
    evaluation = json.loads((data_dir / "evaluation" / "summary.json").read_text())
    comparison = evaluation["sections"]["offline"]["comparison"]
    assert comparison["users"] > 0 and set(comparison["methods"]) >= {"served", "pop", "itemknn", "ease"}
    bundle = Path(first["registered"]["bundle"])
    for part in ("features", "ranker/model.onnx", "recall/engine.json", "manifest.json"):
        assert (bundle / part).exists(), part
    assert first["synced"]["version"] == first["run_id"]
    assert first["synced"]["active_version"] == first["run_id"]
    assert first["synced"]["recall_lists"]["history"] > 0

    second = run_json(data_dir)
    assert second["extracted"]["rows"] == 0

    with engine.begin() as conn:
        ids = conn.execute(sa.select(items.c.item_id).order_by(items.c.item_id).limit(3)).scalars().all()
        conn.execute(
            items.update()
            .where(items.c.item_id.in_(ids))
            .values(title="renamed", updated_at=datetime(2030, 1, 1))
        )
    engine.dispose()
    third = run_json(data_dir)
    assert third["extracted"]["rows"] == 3
    assert third["extracted"]["tables"]["items"] == 3


def test_human_output_has_a_line_per_step(data_dir: Path) -> None:
    proc = recsys("pipeline", "run", "--local", "--data-dir", str(data_dir), cwd=data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    progress = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    assert [line.split()[1] for line in progress] == PIPELINE_STEPS
    assert "0 rows extracted" in progress[0]
    assert "succeeded" in proc.stdout and "extracted: 0 rows" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source-db", "oracle://scott@db/x"], "source_db: unsupported URL scheme 'oracle'"),
        (["--source-db", "sqlite:///{d}/empty.db"], "table 'users' is missing"),
        (["--window-start", "yesterday"], "--window-start: 'yesterday' is not an ISO 8601 timestamp"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(tmp_path: Path, args: list[str], message: str) -> None:
    if "empty.db" in args[-1]:
        create_engine(f"sqlite:///{tmp_path}/empty.db", create_dirs=True).connect().close()
    args = [a.replace("{d}", str(tmp_path)) for a in args]
    proc = recsys("pipeline", "run", "--local", "--data-dir", str(tmp_path), *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("recsys: error: ")
    assert message in proc.stderr


def test_sync_only_republishes_without_recomputing(data_dir: Path) -> None:
    proc = recsys(
        "pipeline", "run", "--local", "--sync-only", "--json", "--data-dir", str(data_dir), cwd=data_dir
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert set(result["steps"]) == {"sync_store"}  # no extract/clean/features/train
    latest = json.loads((data_dir / "bundles" / "LATEST.json").read_text())
    assert result["synced"]["version"] == latest["version"]


def test_corrupted_prices_stop_at_the_quality_gate(data_dir: Path) -> None:
    status = recsys("store", "status", "--json", "--data-dir", str(data_dir), cwd=data_dir)
    active_before = json.loads(status.stdout)["active_version"]
    engine = create_engine(f"sqlite:///{data_dir / 'source.db'}")
    with engine.begin() as conn:
        ids = conn.execute(sa.select(items.c.item_id).order_by(items.c.item_id)).scalars().all()
        nulled = ids[::3]  # a third of the catalogue
        conn.execute(
            items.update()
            .where(items.c.item_id.in_(nulled))
            .values(price=None, updated_at=datetime(2030, 1, 2))
        )
    engine.dispose()
    proc = recsys("pipeline", "run", "--local", "--json", "--data-dir", str(data_dir), cwd=data_dir)
    assert proc.returncode == 3, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["status"] == "stopped_at_quality_gate"
    assert "train" not in summary["steps"] and "sync_store" not in summary["steps"]
    failing = [c["name"] for c in summary["quality"]["failing"]]
    assert "items.price null_rate" in failing
    assert "stopped at the quality gate" in proc.stderr and "items.price null_rate" in proc.stderr
    html = Path(summary["quality"]["report_html"]).read_text()
    assert "FAIL" in html and "items.price null_rate" in html
    status = recsys("store", "status", "--json", "--data-dir", str(data_dir), cwd=data_dir)
    assert json.loads(status.stdout)["active_version"] == active_before  # nothing was published


def run_cli_json(data_dir: Path, *args: str) -> dict | list:
    proc = recsys(*args, "--json", "--data-dir", str(data_dir), cwd=data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_models_recommendations_and_rollback(data_dir: Path, tmp_path: Path) -> None:
    versions = run_cli_json(data_dir, "model", "list")
    champion = [v for v in versions if "champion" in v["aliases"]]
    assert len(champion) == 1
    champion_bundle = champion[0]["bundle_version"]

    # one user's list, with the channels behind each item; a cold user gets popular items
    engine = create_engine(f"sqlite:///{data_dir / 'source.db'}")
    with engine.connect() as conn:
        user = conn.execute(
            sa.text("select user_id from events where event_type='click' limit 1")
        ).scalar_one()
    engine.dispose()
    known = run_cli_json(data_dir, "recommend", "user", user, "--k", "5")
    assert known["bundle"] == champion_bundle and len(known["items"]) == 5
    assert all(item["channels"] for item in known["items"])
    cold = run_cli_json(data_dir, "recommend", "user", "never-seen-user", "--k", "3")
    assert len(cold["items"]) == 3 and all("popular" in i["channels"] for i in cold["items"])

    users_file = tmp_path / "users.txt"
    users_file.write_text(f"{user}\nnever-seen-user\n")
    out = tmp_path / "recs.csv"
    proc = recsys(
        "recommend",
        "batch",
        "--users",
        str(users_file),
        "--k",
        "4",
        "-o",
        str(out),
        "--data-dir",
        str(data_dir),
        cwd=data_dir,
    )
    assert proc.returncode == 0, proc.stderr
    rows = out.read_text().strip().splitlines()
    assert rows[0] == "user_id,rank,item_id,score" and len(rows) == 1 + 2 * 4
    # items the user already clicked are not recommended back
    with create_engine(f"sqlite:///{data_dir / 'source.db'}").connect() as conn:
        clicked = set(
            conn.execute(
                sa.text(
                    "select item_id from events where user_id=:u and event_type "
                    "in ('click','add_to_cart','purchase')"
                ),
                {"u": user},
            ).scalars()
        )
    assert not clicked & {r.split(",")[2] for r in rows[1:] if r.startswith(f"{user},")}

    proc = recsys("recommend", "user", user, "--k", "0", "--data-dir", str(data_dir), cwd=data_dir)
    assert proc.returncode == 2 and "--k" in proc.stderr

    proc = recsys("model", "rollback", "--json", "--data-dir", str(data_dir), cwd=data_dir)
    if proc.returncode == 0:  # an earlier champion exists: it is back, and serving with it
        rolled = json.loads(proc.stdout)
        assert rolled["champion"]["bundle_version"] != champion_bundle
        status = run_cli_json(data_dir, "store", "status")
        assert status["active_version"] == rolled["champion"]["bundle_version"]
    else:  # only one champion ever: rollback says so and changes nothing
        assert proc.returncode == 2 and "no previous champion" in proc.stderr
        assert run_cli_json(data_dir, "model", "list") == versions
