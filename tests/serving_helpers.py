"""Processes and clients for the serving tests: a private Redis, the pipeline, both servers.

The servers and Redis are real processes on loopback ports. Redis is a private ``redis-server``
(not the machine's shared one) because the tests stop and resume it (SIGSTOP/SIGCONT) to
simulate an outage without losing its data.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = "recsys"
SMALL: dict[str, str] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway redis-server; ``pause``/``resume`` freeze it like a hung or partitioned host."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (scripts/start_services.sh installs it)")
        self.binary, self.workdir = binary, workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._spawn()

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: a crashed pod. With no persistence, everything it held is gone."""
        self.proc.kill()
        self.proc.wait()

    def start_empty(self) -> None:
        """A new, empty redis-server on the same port (the pod restarted)."""
        self._spawn()

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        stop(self.proc)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    env = {**os.environ, **SMALL, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "recsys", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def start(
    module: str,
    logs: Path,
    data_dir: Path,
    port: int,
    *args: str,
    env: dict[str, str] | None = None,
    grpc_port: int | None = None,
) -> subprocess.Popen[bytes]:
    """``python -m module`` on loopback ports; output in ``logs/<module>-<port>.log``."""
    grpc = grpc_port or free_port()
    cmd = [sys.executable, "-m", module, "--http_port", str(port), "--grpc_port", str(grpc),
           "--data_dir", str(data_dir), "--enable_latency_logging", "false", *args]  # fmt: skip
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RECSYS_DATA_DIR": str(data_dir), **(env or {})}
    with (logs / f"{module}-{port}.log").open("wb") as out:
        return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{log.name}: exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{log.name}: not ready after {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def infer(
    url: str, user: object, k: int | None = 10, request_id: str = "", **extra: np.ndarray
) -> triton.InferResult:
    client = triton.InferenceServerClient(url, network_timeout=30)
    dtype = "INT64" if isinstance(user, int) else "BYTES"
    uid = triton.InferInput("user_id", [1], dtype)
    uid.set_data_from_numpy(np.array([user], dtype=np.int64 if isinstance(user, int) else np.object_))
    inputs = [uid]
    if k is not None:
        kin = triton.InferInput("k", [1], "INT32")
        kin.set_data_from_numpy(np.array([k], np.int32))
        inputs.append(kin)
    for name, arr in extra.items():
        t = triton.InferInput(name, list(arr.shape), "BYTES" if arr.dtype == object else "FP32")
        t.set_data_from_numpy(arr)
        inputs.append(t)
    try:
        return client.infer(MODEL, inputs, request_id=request_id)
    finally:
        client.close()


def text(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.reshape(-1)]


def metric(url: str, name: str, **labels: str) -> float:
    """The sample ``name{labels...}`` from /metrics (0.0 when absent)."""
    body = urllib.request.urlopen(f"http://{url}/metrics", timeout=10).read().decode()
    for line in body.splitlines():
        if line.startswith(name + ("{" if labels else " ")) and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
