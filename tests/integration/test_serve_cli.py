"""``recsys serve`` as a user runs it: both servers up on the champion, answers shown, stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from serving_helpers import RedisServer, free_port


def serve(data_dir: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recsys", "serve", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ},
    )  # fmt: skip


def ports() -> list[str]:
    names = ("--http-port", "--grpc-port", "--predictor-http-port", "--predictor-grpc-port")
    return [arg for name in names for arg in (name, str(free_port()))]


def test_serve_once_shows_recommendations_and_stops(served_data: Path, private_redis: RedisServer) -> None:
    proc = serve(served_data, *ports(), "--store", private_redis.url, "--try-users", "u000001,new-visitor",
                 "--k", "3", "--once", "--poll-seconds", "0")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "ready." in out and "/recommend?user_id=u000001" in out and "/v2/models/recsys/infer" in out
    for user in ("u000001", "new-visitor"):
        section = out.split(f"user {user}:", 1)[1].split("\nuser ", 1)[0]
        assert "degrade level 0" in section
        assert [line.split()[0] for line in section.splitlines()[1:4]] == ["1.", "2.", "3."]
    # both servers were stopped: their logs end with the shutdown
    for name in ("transformer", "predictor"):
        assert "Stopping the model server" in (served_data / "logs" / "serve" / f"{name}.log").read_text()


def test_serve_without_a_trained_model_is_one_line(tmp_path: Path) -> None:
    proc = serve(tmp_path, *ports(), "--once", timeout=60)
    assert (
        proc.returncode == 2 and proc.stderr.count("\n") == 1 and "recsys pipeline run --local" in proc.stderr
    )


def test_serve_port_in_use_names_the_flag(served_data: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = serve(served_data, "--http-port", str(port), "--once", timeout=60)
    assert proc.returncode == 2 and f"--http-port {port} is in use" in proc.stderr
