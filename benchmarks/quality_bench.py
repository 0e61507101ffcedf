"""Recommendation quality through the product path, beside EASE, ItemKNN and popularity.

    .venv/bin/python benchmarks/quality_bench.py [--dataset movielens|marketplace|all]
        [--movielens PATH] [--json [FILE]] [--keep]

Nothing here computes a metric: each dataset gets a fresh data directory and the commands a
user types, with the shipped config, as subprocesses (their wall time is measured):

* movielens: ``recsys data import movielens PATH`` -> ``recsys pipeline run --local --as-of
  latest`` -> ``recsys evaluate --protocol last-n:10 --positive-min-value 4`` and ``--protocol
  time-cut:0.9 --positive-min-value 4``;
* marketplace: ``recsys data generate`` (the demo's 2,000 users, 1,000 items, 30 days, seed 42)
  -> ``recsys pipeline run --local`` -> ``recsys evaluate`` (the configured protocol, auto) and
  ``--protocol last-n:10``.

The numbers are those ``recsys evaluate`` prints and writes: the served chain's NDCG@20 and
its ratio to EASE with the paired bootstrap interval, every method's metrics at 10 and 20.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MOVIELENS = REPO.parent / "shared" / "data" / "ml-latest-small"
METHODS = ("served", "fused", "ease", "itemknn", "pop")


def recsys(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "recsys", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)  # fmt: skip
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"recsys {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout, round(seconds, 1)


def evaluate(protocol: list[str], env: dict[str, str], work: Path) -> dict[str, Any]:
    out, seconds = recsys(["evaluate", *protocol, "--json"], env, work)
    result = json.loads(out)
    methods = result["comparison"]["methods"]
    return {
        "command": " ".join(["recsys", "evaluate", *protocol]),
        "protocol": result["protocol"],
        "users": result["users"],
        "seconds": seconds,
        "ndcg_at_20_vs_ease": result["ndcg_at_20_vs_reference"],
        "ndcg_at_20_vs_ease_ci95": result["ndcg_at_20_vs_reference_ci95"],
        "methods": {
            m: {k: round(v, 4) for k, v in methods[m].items() if isinstance(v, float) and "_vs_" not in k}
            for m in METHODS
            if m in methods
        },
    }


def bench(name: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"quality-bench-{name}-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env["RECSYS_DATA_DIR"] = str(work / "data")
    try:
        if name == "movielens":
            _, load = recsys(["data", "import", "movielens", str(args.movielens)], env, work)
            pipeline = ["pipeline", "run", "--local", "--as-of", "latest", "--json"]
            protocols = [["--protocol", "last-n:10", "--positive-min-value", "4"],
                         ["--protocol", "time-cut:0.9", "--positive-min-value", "4"]]  # fmt: skip
        else:
            cmd = ["data", "generate", "--users", "2000", "--items", "1000", "--days", "30", "--seed", "42"]
            _, load = recsys(cmd, env, work)
            pipeline = ["pipeline", "run", "--local", "--json"]
            protocols = [[], ["--protocol", "last-n:10"]]
        out, seconds = recsys(pipeline, env, work)
        summary = json.loads(out)
        result = {
            "dataset": name,
            "load_seconds": load,
            "pipeline": {
                "command": " ".join(["recsys", *pipeline[:-1]]),
                "seconds": seconds,
                "steps": {s: v["seconds"] for s, v in summary["steps"].items()},
                "evaluation": summary["evaluation"],
                "holdout_auc": summary["training"]["metrics"].get("holdout_auc"),
                "quality_score": summary["quality"]["score"],
            },
            "evaluate": [evaluate(p, env, work) for p in protocols],
        }
        print(f"[{name}] done", file=sys.stderr)
        return result
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def print_report(report: dict[str, Any]) -> None:
    for run in report["runs"]:
        p = run["pipeline"]
        print(f"\n{run['dataset']}: {p['command']} in {p['seconds']}s (quality {p['quality_score']}, "
              f"holdout AUC {p['holdout_auc']:.3f}; {p['evaluation']['protocol']}: "
              f"{p['evaluation']['ndcg_at_20_vs_reference']:.3f}x EASE)")  # fmt: skip
        for ev in run["evaluate"]:
            lo, hi = ev["ndcg_at_20_vs_ease_ci95"]
            print(f"  {ev['command']}  ({ev['protocol']}, {ev['users']} users, {ev['seconds']}s): "
                  f"served/EASE NDCG@20 {ev['ndcg_at_20_vs_ease']:.3f}x [{lo:.3f}, {hi:.3f}]")  # fmt: skip
            head = ("method", "NDCG@20", "Recall@20", "HR@20", "MRR@20", "NDCG@10")
            print(f"    {head[0]:<8} " + " ".join(f"{h:>9}" for h in head[1:]))
            for m, v in ev["methods"].items():
                keys = ("ndcg@20", "recall@20", "hit_rate@20", "mrr@20", "ndcg@10")
                print(f"    {m:<8} " + " ".join(f"{v[k]:>9.4f}" for k in keys))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("movielens", "marketplace", "all"), default="all")
    parser.add_argument("--movielens", type=Path, default=DEFAULT_MOVIELENS)
    parser.add_argument("--json", nargs="?", const="-", help="write the report as JSON (to FILE)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    args = parser.parse_args(argv)
    names = ["movielens", "marketplace"] if args.dataset == "all" else [args.dataset]
    if "movielens" in names and not (args.movielens / "ratings.csv").exists():
        raise SystemExit(f"--movielens: {args.movielens} holds no ratings.csv")
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "runs": [bench(n, args) for n in names],
    }
    if args.json == "-":
        print(json.dumps(report, indent=1))
    else:
        print_report(report)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
