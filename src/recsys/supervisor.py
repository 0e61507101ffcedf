"""Local server processes kept running: started, watched, restarted with backoff, stopped in order.

``recsys serve`` runs the predictor, the transformer (and a shadow) as processes of their own,
as in the cluster, where the kubelet restarts a crashed container with a growing back-off. Here
the ``Supervisor`` does that: a server that exits is reported with its exit status and its own
last log lines (those written since it was started, never an earlier run's), restarted after
1 s, 2 s, 4 s ... up to ``max_delay_s``, while the others keep serving (the transformer answers
from recall order while its predictor is away, and its circuit breaker finds it back). A server
that crashes ``max_in_a_row`` times without staying up ``stable_after_s`` is given up on:
everything stops and the command fails with the last crash's lines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recsys.errors import PipelineError


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    max_in_a_row: int = 5  # 0: never restart, a crash stops everything
    stable_after_s: float = 60.0  # up this long, the next crash counts as the first again


@dataclass
class Server:
    name: str
    module: str
    http_port: int
    grpc_port: int
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    log_offset: int = 0  # where this run's lines start in the (appended) log
    started_at: float = 0.0
    restarts: int = 0
    in_a_row: int = 0
    restart_at: float | None = None  # set while it waits out its back-off
    recovering: bool = False  # restarted, not yet ready

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def own_lines(self, lines: int = 30) -> str:
        """The last ``lines`` this run of the server wrote to its log."""
        if self.log is None or not self.log.exists():
            return ""
        with self.log.open("rb") as f:
            f.seek(self.log_offset)
            text = f.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(it wrote nothing since it started)"


def ready(server: Server) -> bool:
    try:
        with urllib.request.urlopen(f"http://{server.url}/v2/health/ready", timeout=1) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


class Supervisor:
    def __init__(
        self,
        servers: list[Server],
        data_dir: Path,
        log_dir: Path,
        policy: RestartPolicy = RestartPolicy(),
        report: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    ) -> None:
        """``servers`` in stop order (the transformer first: it flushes its exposure log)."""
        self.servers, self.data_dir, self.log_dir = servers, data_dir, log_dir
        self.policy, self.report = policy, report

    def start(self, server: Server) -> None:
        server.log = self.log_dir / f"{server.name}.log"
        ports = ["--http_port", str(server.http_port), "--grpc_port", str(server.grpc_port)]
        cmd = [sys.executable, "-m", server.module, *ports, "--data_dir", str(self.data_dir), *server.args]
        with server.log.open("ab") as out:
            server.log_offset = out.tell()
            # own process group: Ctrl-C reaches this command, which stops the servers in order,
            # and a crashed server's leftover workers can be found and stopped before a restart
            server.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "RECSYS_DATA_DIR": str(self.data_dir), **server.env},
            )  # fmt: skip
        server.started_at = time.monotonic()

    def start_all(self, ready_timeout: float) -> None:
        """Start every server and wait until all are ready; a server that exits meanwhile is a
        configuration problem, not a crash to restart: PipelineError with its lines."""
        for server in reversed(self.servers):  # the predictor before the transformer
            self.start(server)
        deadline = time.monotonic() + ready_timeout
        pending = list(self.servers)
        while pending:
            for server in list(pending):
                assert server.proc is not None
                if server.proc.poll() is not None:
                    raise PipelineError(
                        f"serve: the {server.name} exited with {exit_status(server.proc.returncode)}; "
                        f"its last lines ({server.log}):\n{server.own_lines()}"
                    )
                if ready(server):
                    pending.remove(server)
            if pending and time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise PipelineError(
                    f"serve: {names} not ready after {ready_timeout:g} s; see {pending[0].log}"
                )
            time.sleep(0.2)

    def watch(self, until: Callable[[], bool] = lambda: False, every_s: float = 0.5) -> None:
        """Keep the servers running until ``until()`` (or forever); PipelineError when a
        server is given up on."""
        while not until():
            for server in self.servers:
                self.check(server, time.monotonic())
            time.sleep(every_s)

    def check(self, server: Server, now: float) -> None:
        assert server.proc is not None
        if server.restart_at is not None:
            if now >= server.restart_at:
                server.restart_at = None
                server.restarts += 1
                self.report(f"serve: restarting the {server.name} (restart {server.restarts})")
                self.start(server)
                server.recovering = True
            return
        code = server.proc.poll()
        if code is None:
            if server.recovering and ready(server):
                server.recovering = False
                self.report(f"serve: the {server.name} is ready again after restart {server.restarts}")
            if now - server.started_at >= self.policy.stable_after_s:
                server.in_a_row = 0
            return
        _stop_group(server.proc)  # workers a crashed parent left behind hold its port
        server.in_a_row += 1
        uptime = now - server.started_at
        crash = (
            f"serve: the {server.name} exited with {exit_status(code)} after {uptime:.1f} s; "
            f"its last lines ({server.log}):\n{server.own_lines()}"
        )
        if server.in_a_row > self.policy.max_in_a_row:
            gave_up = (
                f" (crashed {server.in_a_row} times in a row; given up)" if self.policy.max_in_a_row else ""
            )
            raise PipelineError(crash + gave_up)
        delay = min(self.policy.first_delay_s * 2 ** (server.in_a_row - 1), self.policy.max_delay_s)
        self.report(f"{crash}\nserve: restarting the {server.name} in {delay:g} s "
                    f"(crash {server.in_a_row} of at most {self.policy.max_in_a_row} in a row)")  # fmt: skip
        server.restart_at = now + delay
        server.recovering = False

    def stop_all(self) -> None:
        for server in self.servers:
            if server.running():
                assert server.proc is not None
                server.proc.terminate()
                try:
                    server.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    server.proc.kill()
                    server.proc.wait()
                    _stop_group(server.proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL what is left of the process group of an exited server (its session leader)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
