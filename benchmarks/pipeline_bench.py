"""Cost of the full local pipeline: wall time per step, total, and peak memory of the process tree.

    .venv/bin/python benchmarks/pipeline_bench.py [--dataset movielens|synthetic|all]
        [--events N] [--movielens PATH] [--json [FILE]] [--keep]

Each dataset gets a fresh temporary data directory: the source database is filled with the
``recsys data`` CLI (not timed as part of the pipeline), then ``recsys pipeline run --local
--json`` runs as a subprocess while a sampler thread sums the RSS of it and all its descendants
every 0.2 s. Per-step seconds come from the run summary's ``steps``; per-step peak RSS from the
component subprocess running it (kfp.local passes ``--function_to_execute <step>``). The fixed
cost of a component (interpreter start + imports) is measured separately in fresh interpreters.

MovieLens (2018 data) runs with the shipped config and ``--as-of latest`` (the newest rating),
as a user would run it: the gate finds its empty optional columns not applicable and measures
freshness from the as-of time; the training splits come from the evaluation protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MOVIELENS = REPO.parent / "shared" / "data" / "ml-latest-small"
SAMPLE_SECONDS = 0.2
# the default generator (2000 users x 1000 items x 30 days) writes ~395.6k events; events grow
# linearly with users at a fixed catalogue/user ratio, which keeps the behaviour comparable
DEFAULT_EVENTS_PER_USER = 395_574 / 2000
GiB = 1024**3


# --------------------------------------------------------------------------- measuring


@dataclass
class TreeSampler:
    """Samples the RSS of a process and its descendants until stopped.

    ``peak_tree`` is the peak of the *sum* over live processes (shared library pages count once
    per process, so it overstates physical use a little); ``peak_by_step`` is the peak RSS of
    the component process of each step (including its children, e.g. a ``sh -c`` wrapper).
    """

    pid: int
    interval: float = SAMPLE_SECONDS
    peak_tree: int = 0
    peak_single: int = 0
    peak_by_step: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _steps: dict[int, str | None] = field(default_factory=dict)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        return thread

    def stop(self, thread: threading.Thread) -> None:
        self._stop.set()
        thread.join()

    def _step_of(self, proc: psutil.Process) -> str | None:
        if proc.pid not in self._steps:
            try:
                cmd = proc.cmdline()
            except psutil.Error:
                return None
            step = None
            for flag, value in zip(cmd, cmd[1:], strict=False):
                if flag == "--function_to_execute":
                    step = value
            if step is None:  # kfp.local wraps the executor in `sh -c '<script>' ...`
                text = " ".join(cmd)
                if "--function_to_execute" in text:
                    step = text.split("--function_to_execute", 1)[1].split()[0].strip("'\"")
            self._steps[proc.pid] = step
        return self._steps[proc.pid]

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            per_step: dict[str, int] = {}
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                self.peak_single = max(self.peak_single, rss)
                step = self._step_of(proc) if proc.pid != self.pid else None
                if step:
                    per_step[step] = per_step.get(step, 0) + rss
            self.peak_tree = max(self.peak_tree, total)
            for step, rss in per_step.items():
                self.peak_by_step[step] = max(self.peak_by_step.get(step, 0), rss)
            self.samples += 1
            self._stop.wait(self.interval)


def recsys_cmd() -> list[str]:
    """The venv's ``recsys`` script when present (what a user runs), else ``python -m recsys``."""
    script = Path(sys.executable).with_name("recsys")
    return [str(script)] if script.exists() else [sys.executable, "-m", "recsys"]


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid)
    thread = sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    sampler.stop(thread)
    # the children's rusage: the kernel's own peak of the largest single process, a cross-check
    # of the sampler (which can miss a spike shorter than its interval)
    ru_maxrss_kib = _children_maxrss_kib()
    return {
        "returncode": proc.returncode,
        "stdout": stdout,
        "stderr": stderr,
        "wall_seconds": wall,
        "peak_tree_rss": sampler.peak_tree,
        "peak_process_rss": sampler.peak_single,
        "peak_by_step": sampler.peak_by_step,
        "samples": sampler.samples,
        "children_max_rss": ru_maxrss_kib * 1024,
    }


def _children_maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([*recsys_cmd(), *args], env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"recsys {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def import_seconds(code: str, repeats: int = 3) -> float:
    """Median wall time of a fresh interpreter running ``code`` (start + imports)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# what a component process imports before its step does any work: kfp's executor and the
# component module (which imports the step module inside the function)
STEP_MODULES = {
    "extract_load": "recsys.steps.extract",
    "clean": "recsys.steps.clean",
    "features": "recsys.steps.features",
    "quality_gate": "recsys.steps.quality",
    "train": "recsys.steps.train",
    "evaluate": "recsys.steps.evaluate",
    "register": "recsys.steps.register",
    "sync_store": "recsys.steps.sync",
}


STEP_ORDER = list(STEP_MODULES)


def startup_costs() -> dict[str, float]:
    out = {
        "python -c pass": import_seconds("pass"),
        "import recsys.steps, kfp": import_seconds("import recsys.steps, kfp"),
    }
    for step, module in STEP_MODULES.items():
        out[f"{step}: kfp + {module}"] = import_seconds(f"import kfp.dsl.executor_main, components, {module}")
    out["recsys CLI: pipelines.local"] = import_seconds("import recsys.cli, pipelines.local")
    return {k: round(v, 2) for k, v in out.items()}


# --------------------------------------------------------------------------- datasets


def movielens_setup(work: Path, env: dict[str, str], movielens: Path) -> dict[str, Any]:
    """Import ml-latest-small; the pipeline then runs as of its newest rating."""
    imported = json.loads(run_cli(["data", "import", "movielens", str(movielens), "--json"], env, work))
    return {"source": imported, "pipeline_args": ["--as-of", "latest"]}


def synthetic_setup(work: Path, env: dict[str, str], events: int) -> dict[str, Any]:
    users = max(10, round(events / DEFAULT_EVENTS_PER_USER))
    items = max(10, users // 2)
    cmd = ["data", "generate", "--users", str(users), "--items", str(items), "--days", "30", "--json"]
    generated = json.loads(run_cli(cmd, env, work))
    return {"source": generated, "generate": " ".join(["recsys", *cmd[:-1]])}


# --------------------------------------------------------------------------- the run


def bench(name: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"pipeline-bench-{name}-"))
    env = {**os.environ, "RECSYS_DATA_DIR": str(work / "data")}
    for key in [k for k in env if k.startswith("RECSYS_") and k != "RECSYS_DATA_DIR"]:
        del env[key]  # the caller's settings would make the runs incomparable
    try:
        started = time.perf_counter()
        if name == "movielens":
            setup = movielens_setup(work, env, args.movielens)
        else:
            setup = synthetic_setup(work, env, args.events)
        setup["seconds"] = round(time.perf_counter() - started, 1)
        print(f"[{name}] source ready in {setup['seconds']}s: {setup['source']['rows']}", file=sys.stderr)
        extra = setup.get("pipeline_args", [])
        measured = run_measured([*recsys_cmd(), "pipeline", "run", "--local", "--json", *extra], env, work)
        if measured["returncode"] != 0:
            tail = measured["stderr"][-4000:]
            raise SystemExit(f"[{name}] pipeline failed ({measured['returncode']}):\n{tail}")
        summary = json.loads(measured["stdout"])
        steps = {
            step: {
                "seconds": info["seconds"],
                "status": info["status"],
                "peak_rss_mib": round(measured["peak_by_step"].get(step, 0) / 2**20),
            }
            # the CLI prints the summary with sorted keys: back to the DAG's order
            for step, info in sorted(summary["steps"].items(), key=lambda kv: STEP_ORDER.index(kv[0]))
        }
        training = summary.get("training") or {}
        data = work / "data"
        # one Parquet file per table and day, in the lake and again in each run's cleaned copy:
        # what every step after extract_load opens
        files = {
            "lake_raw": sum(1 for _ in (data / "lake" / "raw").rglob("*.parquet")),
            "cleaned": sum(1 for _ in data.glob("kfp/*/clean/cleaned/**/*.parquet")),
        }
        return {
            "dataset": name,
            "setup": setup,
            "rows": summary["extracted"],
            "status": summary["status"],
            "steps": steps,
            "steps_seconds": round(sum(s["seconds"] for s in steps.values()), 2),
            "pipeline_duration_seconds": summary["duration_seconds"],
            "wall_seconds": round(measured["wall_seconds"], 2),
            "peak_tree_rss_gib": round(measured["peak_tree_rss"] / GiB, 3),
            "peak_process_rss_gib": round(measured["peak_process_rss"] / GiB, 3),
            "children_max_rss_gib": round(measured["children_max_rss"] / GiB, 3),
            "rss_samples": measured["samples"],
            "parquet_files": files,
            "train_timings": training.get("timings"),
            "e2e_ndcg_at_20": (summary.get("evaluation") or {}).get("ndcg_at_20"),
            "ndcg_at_20_vs_ease": (summary.get("evaluation") or {}).get("ndcg_at_20_vs_reference"),
            "work_dir": str(work) if args.keep else None,
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(psutil.virtual_memory().total / GiB, 1),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


TARGETS = {"movielens": 90.0, "synthetic": 600.0}


def print_report(report: dict[str, Any]) -> None:
    for run in report["runs"]:
        print(f"\n{run['dataset']}: {run['rows']['rows']} rows extracted {run['rows']['tables']}")
        print(f"  Parquet files: {run['parquet_files']}; train step timings: {run['train_timings']}")
        print(f"  {'step':<14} {'seconds':>8} {'peak RSS MiB':>13}")
        for step, info in run["steps"].items():
            print(f"  {step:<14} {info['seconds']:>8.1f} {info['peak_rss_mib']:>13}")
        target = TARGETS[run["dataset"]]
        verdict = "met" if run["wall_seconds"] <= target and run["peak_tree_rss_gib"] <= 4 else "NOT met"
        print(
            f"  steps {run['steps_seconds']:.1f}s, pipeline {run['pipeline_duration_seconds']:.1f}s, "
            f"wall (CLI process) {run['wall_seconds']:.1f}s; peak RSS: tree "
            f"{run['peak_tree_rss_gib']:.2f} GiB, largest process {run['peak_process_rss_gib']:.2f} GiB; "
            f"target <= {target:.0f}s and 4 GiB: {verdict}"
        )
    print("\nfixed cost of a fresh interpreter (median of 3):")
    for what, seconds in report["startup_seconds"].items():
        print(f"  {what:<56} {seconds:6.2f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["movielens", "synthetic", "all"], default="all")
    parser.add_argument("--events", type=int, default=1_000_000, help="synthetic: about this many events")
    parser.add_argument("--movielens", type=Path, default=DEFAULT_MOVIELENS, help="ml-latest-small directory")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="write the report as JSON to FILE (stdout without FILE)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    args = parser.parse_args(argv)
    names = ["movielens", "synthetic"] if args.dataset == "all" else [args.dataset]
    if "movielens" in names and not (args.movielens / "ratings.csv").exists():
        parser.error(f"{args.movielens} does not hold ml-latest-small (ratings.csv)")
    report: dict[str, Any] = {"machine": machine(), "runs": []}
    for name in names:
        report["runs"].append(bench(name, args))
    report["startup_seconds"] = startup_costs()
    report["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print_report(report)
    if args.json == "-":
        print(json.dumps(report, indent=1))
    elif args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
