"""A stand-in for the Kubeflow Pipelines API server (v2beta1 REST), which cannot run here: no
cluster, no Argo. It answers the few calls ``kfp.Client`` makes to schedule a recurring run
(healthz, experiments, recurring runs) and keeps what it was sent, so a test can check the real
client's requests: the compiled pipeline, its parameters and its schedule. Whatever the real
server would validate beyond that is not checked here."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/apis/v2beta1"


class FakeKfp:
    def __init__(self) -> None:
        self.experiments: dict[str, dict[str, Any]] = {}
        self.recurring_runs: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def handle(self, method: str, url: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(url)
        path, query = parts.path, parse_qs(parts.query)
        with self.lock:
            self.calls.append((method, path))
            if method == "GET" and path == f"{API}/healthz":
                return 200, {"multi_user": False}
            if path == f"{API}/experiments":
                if method == "POST":
                    assert body is not None
                    exp = {"experiment_id": uuid.uuid4().hex, "display_name": body["display_name"],
                           "storage_state": "AVAILABLE"}  # fmt: skip
                    self.experiments[exp["experiment_id"]] = exp
                    return 200, exp
                found = list(self.experiments.values())
                if "filter" in query:  # kfp.Client looks an experiment up by display_name
                    wanted = json.loads(query["filter"][0])["predicates"][0]["stringValue"]
                    found = [e for e in found if e["display_name"] == wanted]
                return 200, {"experiments": found, "total_size": len(found)} if found else {}
            if path == f"{API}/recurringruns":
                if method == "POST":
                    assert body is not None
                    run = {**body, "recurring_run_id": uuid.uuid4().hex, "status": "ENABLED"}
                    self.recurring_runs[run["recurring_run_id"]] = run
                    return 200, run
                wanted_exp = query.get("experiment_id", [None])[0]
                runs = [
                    r for r in self.recurring_runs.values() if wanted_exp in (None, r.get("experiment_id"))
                ]
                return 200, {"recurringRuns": runs, "total_size": len(runs)} if runs else {}
            if path.startswith(f"{API}/recurringruns/") and method == "DELETE":
                self.recurring_runs.pop(path.rsplit("/", 1)[1], None)
                return 200, {}
        return 404, {"error": f"fake KFP: no {method} {path}"}


@contextmanager
def fake_kfp() -> Iterator[tuple[FakeKfp, str]]:
    """A FakeKfp on a free loopback port: (state, base URL)."""
    state = FakeKfp()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = state.handle(self.command, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
