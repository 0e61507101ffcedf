"""The cached-pid multi-process values: same files and sums as prometheus_client's own, a
forked child writes its own file, and nothing is installed once the process has values.

Each case runs in a fresh interpreter: prometheus_client picks its value class at import,
from PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(code: str, metrics_dir: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cached_pid_values_add_up_across_a_fork(tmp_path: Path) -> None:
    out = _run(
        """
        import os
        from prometheus_client import CollectorRegistry, values
        from prometheus_client.multiprocess import MultiProcessCollector
        from inference import transformer_metrics as m

        assert getattr(values.ValueClass, "_cached_pid", False), "not installed"
        m.REQUESTS.labels(status="ok", variant="a").inc(3)
        m.LATENCY.labels(variant="a").observe(0.004)
        child = os.fork()
        if child == 0:
            m.REQUESTS.labels(status="ok", variant="a").inc(2)
            os._exit(0)
        os.waitpid(child, 0)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        print(registry.get_sample_value("recommendation_requests_total", {"status": "ok", "variant": "a"}))
        print(registry.get_sample_value("recommendation_latency_seconds_count", {"variant": "a"}))
        print(os.getpid(), child)
        """,
        tmp_path,
    )
    total, count, pids = out.split("\n")[:3]
    parent, child = pids.split()
    assert float(total) == 5.0  # 3 from the parent's file + 2 from the child's
    assert float(count) == 1.0
    files = {p.name for p in tmp_path.glob("*.db")}
    assert f"counter_{parent}.db" in files and f"counter_{child}.db" in files


def test_not_installed_once_the_process_has_values(tmp_path: Path) -> None:
    out = _run(
        """
        from prometheus_client import Counter, values
        Counter("early", "created before install").inc()
        from inference import multiprocess_values
        print(multiprocess_values.install(), getattr(values.ValueClass, "_cached_pid", False))
        """,
        tmp_path,
    )
    assert out.split() == ["False", "False"]


def test_single_process_mode_is_left_alone(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run(
        [sys.executable, "-c", "from inference import multiprocess_values as m; print(m.install())"],
        env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.stdout.split() == ["False"], done.stderr
