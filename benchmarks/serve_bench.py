"""Load test of the serving pair (KServe transformer + predictor) with wrk.

1. Unless ``--data-dir`` already holds a champion: generate the demo marketplace (2,000 users,
   1,000 items, 30 days) and train it with the local pipeline, the ranker forced to
   ``--trees`` trees (early stopping off), publishing to the Redis at ``--store``.
2. ``recsys serve`` starts predictor and transformer (as in the README) on that data dir.
3. wrk drives ``POST /v2/models/recsys/infer`` (JSON v2, what a client sends) at a fixed
   concurrency for ``--duration`` seconds, cycling through a request mix: users with a history
   ("known"), ids never seen ("unknown") and users registered without any event ("cold").
4. Reports RPS, p50/p95/p99 (wrk's own histogram, from its Lua ``done`` hook), errors (socket
   errors + non-2xx), the answers' degrade levels, per-stage means from the transformer's
   metrics, and the CPU seconds each process used per request: where the time goes.
5. Times two fixed single-threaded workloads (``speed_reference_ms``) right before and after
   the measured run, a record of the machine's state: shared VMs drift in speed by tens of
   percent within an hour. On 2026-11-29 these stayed flat while the servers' CPU per request
   moved by 40 % (BENCHMARKS.md), so compare runs made back to back, not across hours.

    .venv/bin/python benchmarks/serve_bench.py --data-dir /tmp/serve-bench --json /tmp/serve.json

With ``--against-plain --auth both --rounds 2``: each round loads the plain KServe pair
(benchmarks/plain_pair.py), then ours with the edge off, then with API keys on, and reports the
ratios of RPS measured in that round (the machine's speed drifts between rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECSYS = [sys.executable, "-m", "recsys"]
LUA = r"""
local bodies = {}
local n = 0
for line in io.lines("%(bodies)s") do n = n + 1; bodies[n] = line end
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(headers)s
request = function()
  counter = counter %% n + 1
  return wrk.format(nil, "/v2/models/recsys/infer", nil, bodies[counter])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\"requests\": %%d, \"duration_us\": %%d, \"p50_us\": %%d, \"p90_us\": %%d, " ..
    "\"p95_us\": %%d, \"p99_us\": %%d, \"max_us\": %%d, \"mean_us\": %%.1f, \"connect\": %%d, " ..
    "\"read\": %%d, \"write\": %%d, \"status\": %%d, \"timeout\": %%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def speed_reference_ms() -> dict[str, float]:
    """Median of 5 timings of two fixed workloads, a gauge of the machine at this moment:
    ``compute``, interpreter work and small NumPy calls (what a request spends in the transformer)
    in cache; ``memory``, random reads over 128 MB (what neighbours on a shared host slow down)."""
    import numpy as np

    rng = np.random.default_rng(0)
    block = rng.random((300, 64))
    big = rng.random(16_000_000)
    picks = rng.integers(0, len(big), 2_000_000)
    compute, memory = [], []
    for _ in range(5):
        start = time.perf_counter()
        table: dict[int, float] = {}
        for i in range(300_000):
            table[i % 997] = table.get(i % 997, 0.0) + i * 0.5
        for _ in range(1500):
            np.argsort(block[:, 3])
            block.sum(axis=1)
        compute.append(time.perf_counter() - start)
        start = time.perf_counter()
        big[picks].sum()
        memory.append(time.perf_counter() - start)
    return {"compute": round(1000 * sorted(compute)[2], 2), "memory": round(1000 * sorted(memory)[2], 2)}


def sh(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed:\n{proc.stderr[-3000:]}")


def prepare(args: argparse.Namespace, env: dict[str, str]) -> None:
    if (args.data_dir / "bundles" / "LATEST.json").exists():
        print(f"using the champion already trained in {args.data_dir}")
        return
    print(f"training the demo marketplace into {args.data_dir} ({args.trees} trees, store {args.store}) ...")
    sh(
        [*RECSYS, "data", "generate", "--users", "2000", "--items", "1000", "--days", "30", "--seed", "42"],
        env,
    )
    sh([*RECSYS, "pipeline", "run", "--local"], env)


def request_mix(args: argparse.Namespace, path: Path) -> dict[str, int]:
    """One JSON v2 body per line: known 70 %, unknown 20 %, cold 10 % (shuffled, fixed seed)."""
    db = sqlite3.connect(args.data_dir / "source.db")
    known = [r[0] for r in db.execute("select distinct user_id from events order by user_id")]
    cold = [
        r[0]
        for r in db.execute("select user_id from users where user_id not in (select user_id from events)")
    ]
    rng = random.Random(0)
    kinds = ["known"] * 70 + ["unknown"] * 20 + ["cold"] * (10 if cold else 0)
    counts: dict[str, int] = {}
    with path.open("w") as out:
        for n in range(args.mix_size):
            kind = rng.choice(kinds)
            counts[kind] = counts.get(kind, 0) + 1
            user = (
                rng.choice(known)
                if kind == "known"
                else rng.choice(cold)
                if kind == "cold"
                else f"visitor-{n}"
            )
            inputs = [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": [user]},
                      {"name": "k", "shape": [1], "datatype": "INT32", "data": [args.k]}]  # fmt: skip
            body = {"inputs": inputs}
            out.write(json.dumps(body) + "\n")
    return counts


def metrics_text(url: str) -> str:
    return urllib.request.urlopen(f"http://{url}/metrics", timeout=10).read().decode()


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric's samples."""
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def cpu_seconds(pid: int, system_only: bool = False) -> float:
    """User + system (or system only) CPU of a process and its waited-for children (0 once it is
    gone: a short-lived helper process the scan caught)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(f) for f in (fields[12:15:2] if system_only else fields[11:15])) / ticks


def system_seconds(procs: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(pid, system_only=True) for pid in group) for name, group in procs.items()}


def pids(serve_pid: int, store: str) -> dict[str, list[int]]:
    """The servers (children of ``recsys serve``, with the transformer's worker processes) and the
    Redis behind ``store``."""
    hostport = re.sub(r"^rediss?://([^/]+).*$", r"\1", store)
    procs: dict[int, tuple[int, str]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = b" ".join((p / "cmdline").read_bytes().split(b"\0")).decode(errors="replace")
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        procs[int(p.name)] = (ppid, cmd)
    found: dict[str, list[int]] = {"serve": [serve_pid]}
    for pid, (ppid, cmd) in procs.items():
        if ppid == serve_pid and "inference.transformer_main" in cmd:
            found["transformer"] = [pid] + [c for c, (pp, _) in procs.items() if pp == pid]
        elif ppid == serve_pid and "inference.predictor_main" in cmd:
            found["predictor"] = [pid]
        elif "redis-server" in cmd and hostport in cmd:
            found["redis"] = [pid]
    return found


def stage_means(before: str, after: str) -> dict[str, float]:
    out = {}
    for stage in ("history", "recall", "features", "matrix", "predict"):
        key = f'{{stage="{stage}"}}'
        s = samples(after, "recommendation_stage_seconds_sum").get(key, 0) - samples(
            before, "recommendation_stage_seconds_sum").get(key, 0)  # fmt: skip
        c = samples(after, "recommendation_stage_seconds_count").get(key, 0) - samples(
            before, "recommendation_stage_seconds_count").get(key, 0)  # fmt: skip
        if c:
            out[stage] = round(1000 * s / c, 3)
    return out


BENCH_KEY, PREDICTOR_KEY = "bench-client-key-0123456789", "bench-predictor-key-0123456789"
AUTH_ENV = {
    "RECSYS_AUTH_ENABLED": "true",
    "RECSYS_AUTH_API_KEYS": f"bench={BENCH_KEY},transformer={PREDICTOR_KEY}",
    "RECSYS_AUTH_PREDICTOR_KEY": PREDICTOR_KEY,
    "RECSYS_AUTH_AUDIT_LOG": "",
}


def wrk_script(work: Path, auth: bool) -> Path:
    """The Lua script cycling through ``bodies.jsonl``; with ``auth`` it sends the bench's key."""
    headers = f'wrk.headers["X-API-Key"] = "{BENCH_KEY}"' if auth else ""
    path = work / f"mix-{'auth' if auth else 'open'}.lua"
    path.write_text(LUA % {"bodies": work / "bodies.jsonl", "headers": headers})
    return path


def prepared(args: argparse.Namespace) -> dict[str, str]:
    """The environment of the bench's processes, with the data dir trained (once)."""
    args.data_dir = args.data_dir.resolve()
    env = {**os.environ, "RECSYS_DATA_DIR": str(args.data_dir), "RECSYS_ONLINE_STORE": args.store,
           "RECSYS_RANKING__N_ESTIMATORS": str(args.trees),
           "RECSYS_RANKING__EARLY_STOPPING_ROUNDS": "0"}  # fmt: skip
    prepare(args, env)
    return env


def run(args: argparse.Namespace, auth: bool = False) -> dict[str, Any]:
    """Ours: ``recsys serve`` loaded by wrk; ``auth``: the servers' edge on (API keys, the
    transformer showing its own key to the predictor), the client sending its key."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    env = prepared(args)
    if auth:
        env.update(AUTH_ENV)
    bundle = Path(json.loads((args.data_dir / "bundles" / "LATEST.json").read_text())["path"])
    ranker = json.loads((bundle / "ranker" / "ranker.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    mix = request_mix(args, work / "bodies.jsonl")
    script = wrk_script(work, auth)
    serve = subprocess.Popen(
        [*RECSYS, "serve", "--poll-seconds", "0", "--store", args.store, "--http-port", str(args.port),
         "--grpc-port", str(args.port + 1), "--predictor-http-port", str(args.port + 2),
         "--predictor-grpc-port", str(args.port + 3),
         "--transformer-workers", str(args.workers)],  # fmt: skip
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"127.0.0.1:{args.port}"
    try:
        assert serve.stdout is not None
        for line in serve.stdout:
            if line.startswith("ready."):
                break
        else:
            raise SystemExit(f"recsys serve exited with {serve.wait()}")
        target = f"http://{url}"
        # warm-up: first requests pay lazy imports and connection set-up
        subprocess.run([wrk, "-t1", "-c2", "-d5s", "-s", str(script), target], capture_output=True)
        procs = pids(serve.pid, args.store)
        before_metrics = metrics_text(url)
        before_cpu = {name: sum(map(cpu_seconds, group)) for name, group in procs.items()}
        before_each = {pid: cpu_seconds(pid) for pid in procs.get("transformer", [])}
        before_sys = system_seconds(procs)
        reference = [speed_reference_ms()]
        wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "5s",
             "-s", str(script), target],  # fmt: skip
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        after_cpu = {name: sum(map(cpu_seconds, group)) for name, group in procs.items()}
        after_sys = system_seconds(procs)
        # wrk is this process's only child to finish during the run
        before_cpu["wrk"] = wrk_before.ru_utime + wrk_before.ru_stime
        after_cpu["wrk"] = wrk_after.ru_utime + wrk_after.ru_stime
        used = {pid: cpu_seconds(pid) - before for pid, before in before_each.items()}
        after_metrics = metrics_text(url)
        reference.append(speed_reference_ms())
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    seconds = result["duration_us"] / 1e6
    requests = result["requests"]
    levels = {}
    for labels, value in samples(after_metrics, "recommendation_degraded_total").items():
        levels[labels] = value - samples(before_metrics, "recommendation_degraded_total").get(labels, 0)
    errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "rps": round(requests / seconds, 1),
        "requests": requests,
        "seconds": round(seconds, 1),
        "p50_ms": result["p50_us"] / 1000,
        "p90_ms": result["p90_us"] / 1000,
        "p95_ms": result["p95_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "errors": errors,
        "error_detail": {k: result[k] for k in ("connect", "read", "write", "status", "timeout")},
        "degraded": {k: v for k, v in levels.items() if v},
        "mix": mix,
        "connections": args.connections,
        "transformer_workers": args.workers,
        "wrk_threads": args.threads,
        "stage_mean_ms": stage_means(before_metrics, after_metrics),
        # wrk's connections are spread over the workers when they connect, and stay there
        "transformer_cpu_share": sorted(
            (round(u / max(sum(used.values()), 1e-9), 2) for u in used.values() if u > 0.05), reverse=True
        ),
        "cpu_ms_per_request": {
            name: round(1000 * (spent - before_cpu[name]) / max(requests, 1), 3)
            for name, spent in after_cpu.items()
        },
        # the kernel's part (loopback TCP, wake-ups) of each server's CPU
        "system_cpu_share": {
            name: round((after_sys[name] - before_sys[name]) / (after_cpu[name] - before_cpu[name]), 2)
            for name in before_sys
            if after_cpu[name] - before_cpu[name] > 0.05
        },
        "speed_reference_ms": reference,
        "ranker": {
            "runtime": "onnx",
            "trees": ranker.get("trees"),
            "features": len(ranker["feature_names"]),
            "objective": ranker.get("objective"),
        },
        "candidates": 300,
        "bundle": bundle.name,
        "auth": auth,
    }


def run_plain(args: argparse.Namespace) -> dict[str, Any]:
    """The plain KServe pair (benchmarks/plain_pair.py), loaded by the same wrk run."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    prepared(args)  # the same request bodies as ours: users of the trained data dir
    work = Path(tempfile.mkdtemp(prefix="plain-bench-"))
    request_mix(args, work / "bodies.jsonl")
    script = wrk_script(work, auth=False)
    port = args.port + 10
    pair = str(REPO / "benchmarks" / "plain_pair.py")
    logs = [(work / f"{role}.log").open("wb") for role in ("predictor", "transformer")]
    roles = {
        "predictor": ["--http_port", str(port + 2), "--grpc_port", str(port + 3)],
        "transformer": ["--http_port", str(port), "--grpc_port", str(port + 1),
                        "--predictor_host", f"127.0.0.1:{port + 3}", "--predictor_protocol", "grpc-v2"],
    }  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, pair, role, "--model_name", "recsys", *flags],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for (role, flags), log in zip(roles.items(), logs, strict=True)
    ]
    target = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        for p in (port + 2, port):
            while True:
                try:
                    if (
                        urllib.request.urlopen(f"http://127.0.0.1:{p}/v2/health/ready", timeout=1).status
                        == 200
                    ):
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or any(proc.poll() is not None for proc in procs):
                    raise SystemExit(f"the plain pair did not start; see {work}")
                time.sleep(0.3)
        subprocess.run([wrk, "-t1", "-c2", "-d5s", "-s", str(script), target], capture_output=True)
        out = subprocess.run(
            [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "5s",
             "-s", str(script), target], capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {"rps": round(result["requests"] / (result["duration_us"] / 1e6), 1),
            "p95_ms": result["p95_us"] / 1000, "errors": errors,
            "lgbm_threads": args.plain_lgbm_threads or "default"}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "recsys-serve-bench")
    parser.add_argument(
        "--store", default="redis://127.0.0.1:6379/3", help="online store the bench publishes to"
    )
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="transformer worker processes")
    parser.add_argument("--mix-size", type=int, default=5000)
    parser.add_argument("--port", type=int, default=18080, help="transformer port; +1..+3 for the others")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument(
        "--auth",
        choices=("off", "on", "both"),
        default="off",
        help="the servers' edge: API keys on (the client sends one), off, or both in turn",
    )
    parser.add_argument(
        "--against-plain",
        action="store_true",
        help="also load the plain KServe pair (benchmarks/plain_pair.py) before ours, each round",
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds of plain, ours (off), ours (on)")
    parser.add_argument(
        "--plain-lgbm-threads",
        type=int,
        default=1,
        help="the plain predictor's LightGBM threads; 0 = LightGBM's default (every core)",
    )
    args = parser.parse_args(argv)
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.auth]
    rounds = []
    for n in range(args.rounds):
        round_: dict[str, Any] = {}
        if args.against_plain:
            round_["plain"] = run_plain(args)
        for auth in modes:
            round_["auth_on" if auth else "auth_off"] = run(args, auth)
        for name in ("auth_off", "auth_on"):
            if "plain" in round_ and name in round_:
                round_[f"ratio_{name}"] = round(round_[name]["rps"] / round_["plain"]["rps"], 2)
        print(f"round {n + 1}: " + ", ".join(
            f"{k} {v['rps']} RPS p95 {v['p95_ms']:.1f} ms errors {v['errors']}" if isinstance(v, dict)
            else f"{k} {v}x" for k, v in round_.items()))  # fmt: skip
        rounds.append(round_)
    result: dict[str, Any] = rounds[0][f"auth_{args.auth}"] if len(rounds) == 1 and len(modes) == 1 and (
        not args.against_plain) else {"rounds": rounds}  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
