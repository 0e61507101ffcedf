"""A new user's first hour with ratings data the project never saw, through the product path:

    recsys data import csv -> recsys pipeline run --local --as-of latest -> recsys evaluate
    -> recsys recommend batch, and the KServe servers on the bundle the pipeline published

The data is MovieLens-shaped and made here: ratings 1-5 from the early 2000s (years in the
past), no prices, no impressions, no industries or regions; each rating a ``view`` carrying it,
ratings >= 4 also a ``click``, as the MovieLens importer writes them. The test checks that the
gate passes (the absent columns are not applicable), training runs with the leakage guard quiet,
no seen item is served, the offline and the online lists are the same, and the served chain
beats popularity on the same split.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import REPO_ROOT, free_port, infer, start, stop, text, wait_ready

from inference.experiments import Experiments
from recsys.recommend import BundleRecommender

pytestmark = pytest.mark.slow
GENRES = ("drama", "comedy", "horror", "scifi", "romance", "western")
START = datetime(2001, 3, 1)


def recsys(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recsys", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ))  # fmt: skip


def write_ratings(d: Path, users: int = 150, items: int = 180, seed: int = 11) -> dict[str, set[str]]:
    """users.csv, items.csv, events.csv; returns each user's rated items."""
    rng = np.random.default_rng(seed)
    genre = [GENRES[i % len(GENRES)] for i in range(items)]
    quality = rng.normal(0, 0.6, items)
    with (d / "items.csv").open("w", newline="") as f:
        w = csv.writer(f)
        # the columns a ratings source does not have are there and empty: no prices, no industries
        w.writerow(["item_id", "title", "description", "category", "industry", "tags", "price", "status",
                    "created_at"])  # fmt: skip
        for i in range(items):
            w.writerow([f"m{i:03d}", f"Movie {i}", "", genre[i], "", f"{genre[i]}|decade{i % 3}", "", "",
                        "2000-01-01T00:00:00"])  # fmt: skip
    rated: dict[str, set[str]] = {}
    with (d / "users.csv").open("w", newline="") as fu, (d / "events.csv").open("w", newline="") as fe:
        wu, we = csv.writer(fu), csv.writer(fe)
        wu.writerow(["user_id", "industry", "region", "created_at"])
        we.writerow(["event_id", "user_id", "item_id", "event_type", "ts", "value"])
        popularity = np.exp(quality) / np.exp(quality).sum()
        for u in range(users):
            user = f"r{u:03d}"
            liked = set(rng.choice(GENRES, 2, replace=False))
            affinity = np.array([2.5 if g in liked else 0.3 for g in genre]) * popularity
            n = int(rng.integers(20, 45))
            chosen = rng.choice(items, n, replace=False, p=affinity / affinity.sum())
            begin = START + timedelta(days=int(rng.integers(0, 900)))
            wu.writerow([user, "", "", begin.isoformat()])
            rated[user] = set()
            for step, i in enumerate(chosen):
                ts = (begin + timedelta(hours=3 * step + float(rng.random()))).isoformat(timespec="seconds")
                score = 3.2 + (1.2 if genre[i] in liked else -1.0) + quality[i] + rng.normal(0, 0.7)
                rating = float(np.clip(np.round(score * 2) / 2, 0.5, 5.0))
                item = f"m{i:03d}"
                rated[user].add(item)
                we.writerow([f"v-{user}-{item}", user, item, "view", ts, rating])
                if rating >= 4:
                    we.writerow([f"c-{user}-{item}", user, item, "click", ts, rating])
    return rated


@pytest.fixture(scope="module")
def ratings_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, set[str]]]:
    d = tmp_path_factory.mktemp("ratings")
    rated = write_ratings(d)
    proc = recsys("data", "import", "csv", "--users", str(d / "users.csv"), "--items", str(d / "items.csv"),
                  "--events", str(d / "events.csv"), "--data-dir", str(d), cwd=d)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return d, rated


def test_bad_as_of_and_protocol_are_one_line_exit_2(tmp_path: Path) -> None:
    for args, flag in ((["pipeline", "run", "--local", "--as-of", "yesterday"], "--as-of"),
                       (["evaluate", "--protocol", "last-n:x"], "--protocol"),
                       (["evaluate", "--as-of", "soon"], "--as-of")):  # fmt: skip
        proc = recsys(*args, "--data-dir", str(tmp_path), cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"recsys: error: {flag}: "), (
            proc.stderr
        )


def test_import_pipeline_evaluate_recommend_and_serve(ratings_dir: tuple[Path, dict[str, set[str]]]) -> None:
    d, rated = ratings_dir
    # historical data as of now: the empty windows are named, with the way out
    early = recsys("pipeline", "run", "--local", "--as-of", "1999-01-01", "--data-dir", str(d), cwd=d)
    assert early.returncode == 2 and "--as-of latest" in early.stderr and "newest event is 2" in early.stderr

    proc = recsys("pipeline", "run", "--local", "--as-of", "latest", "--json", "--data-dir", str(d), cwd=d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["status"] == "succeeded" and summary["quality"]["passed"]
    quality = json.loads(Path(summary["quality"]["report_json"]).read_text())
    not_applicable = {
        c["name"] for c in quality["checks"] if c["skipped"] and "not applicable" in c["message"]
    }
    assert {"items.price null_rate", "events.position null_rate", "users.region null_rate"} <= not_applicable
    freshness = next(c for c in quality["checks"] if c["name"] == "events.ts freshness")
    assert freshness["passed"] and not freshness["skipped"]  # measured from the as-of time
    training = summary["training"]
    assert 0.5 < training["metrics"]["holdout_auc"] < 0.99  # the guard let it through, honestly
    evaluation = summary["evaluation"]
    assert evaluation["users"] >= 5 and evaluation["reference"] == "ease"

    # recsys evaluate: the served chain beside the baselines on another protocol
    proc = recsys("evaluate", "--protocol", "last-n:5", "--positive-min-value", "4", "--json",
                  "--data-dir", str(d), cwd=d)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    methods = result["comparison"]["methods"]
    assert set(methods) == {"served", "fused", "pop", "itemknn", "ease"}
    assert methods["served"]["ndcg@20"] > methods["pop"]["ndcg@20"]
    low, high = methods["served"]["ndcg@20_ci95"]
    assert low <= methods["served"]["ndcg@20"] <= high
    assert Path(result["report_html"]).read_text().count("<svg") == 2
    too_many = recsys("evaluate", "--protocol", "last-n:500", "--data-dir", str(d), cwd=d)
    assert too_many.returncode == 2 and "leaves 0 users with relevant test items" in too_many.stderr

    # offline: every user's top 20 holds nothing they already rated (no cap on the history)
    users = sorted(rated)
    (d / "users.txt").write_text("\n".join(users) + "\n")
    out = d / "recs.csv"
    proc = recsys("recommend", "batch", "--users", str(d / "users.txt"), "--k", "20", "-o", str(out),
                  "--data-dir", str(d), cwd=d)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    offline: dict[str, list[str]] = {}
    for row in csv.DictReader(out.open()):
        offline.setdefault(row["user_id"], []).append(row["item_id"])
    assert len(offline) == len(users)
    assert not [u for u in users if set(offline[u]) & rated[u]]

    # online: the servers on the published bundle answer the same lists
    bundle = Path(summary["registered"]["bundle"])
    logs, pport, tport = d / "logs", free_port(), free_port()
    pproc = start("inference.predictor_main", logs, d, pport, "--model_uri", str(bundle))
    # generous budgets: a channel cut off by a slow first request would change the candidates
    tproc = start("inference.transformer_main", logs, d, tport, "--predictor_host", f"127.0.0.1:{pport}",
                  "--bundle", str(bundle), "--channel_timeout_ms", "5000", "--request_timeout_ms", "10000",
                  "--predictor_timeout_ms", "5000")  # fmt: skip
    try:
        wait_ready(pproc, f"127.0.0.1:{pport}", logs / f"inference.predictor_main-{pport}.log")
        wait_ready(tproc, f"127.0.0.1:{tport}", logs / f"inference.transformer_main-{tport}.log")
        # the experiment variant's fusion weights apply online; `recommend` takes them too
        experiments = Experiments.load(REPO_ROOT / "config" / "experiments.yaml")
        recommender = BundleRecommender(bundle)
        for user in users[::10]:
            online = infer(f"127.0.0.1:{tport}", user, 20)
            assert online.get_response()["parameters"]["degrade_level"] == 0
            weights = experiments.assign(user).recall_weights
            expected = [r.item_id for r in recommender.recommend(user, 20, weights=weights)]
            assert text(online.as_numpy("item_ids")) == expected, user
            if not weights:
                assert expected == offline[user]  # recommend batch: the same lists
    finally:
        stop(tproc)
        stop(pproc)
