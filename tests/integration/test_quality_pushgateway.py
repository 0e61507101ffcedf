"""Push a quality report to a real Prometheus Pushgateway and read it back from /metrics."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from conftest import REQUIRE_SERVICES, port_open
from prometheus_client.parser import text_string_to_metric_families

from recsys.quality import PushError, QualityReport, parse_quality_config, push, run_quality

PUSHGATEWAY_BINARY = Path("/usr/bin/prometheus-pushgateway")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary() -> str:
    found = shutil.which("prometheus-pushgateway") or (
        str(PUSHGATEWAY_BINARY) if PUSHGATEWAY_BINARY.exists() else None
    )
    if found:
        return found
    msg = "prometheus-pushgateway is not installed (apt-get install prometheus-pushgateway)"
    if REQUIRE_SERVICES:
        pytest.fail(f"{msg} (RECSYS_REQUIRE_SERVICES=1)")
    pytest.skip(msg)


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    """A private in-memory Pushgateway (empty --persistence.file) on a free loopback port."""
    port = _free_port()
    log = (tmp_path / "pushgateway.log").open("wb")
    proc = subprocess.Popen(
        [_binary(), f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"pushgateway did not start: {(tmp_path / 'pushgateway.log').read_text()}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _report() -> QualityReport:
    cfg = parse_quality_config(
        {
            "checks": [
                {"table": "items", "type": "null_rate", "column": "price", "max": 0.05, "weight": 3},
                {"table": "items", "type": "range", "column": "price", "gt": 0, "weight": 1},
            ]
        }
    )
    items = pd.DataFrame({"price": [1.0, 2.0, None, 4.0]})  # 25 % nulls: the first check fails
    return run_quality({"items": items}, cfg, baseline=None, now=datetime(2026, 3, 1, 12))


def test_push_then_scrape(pushgateway: str) -> None:
    report = _report()
    push(report, pushgateway)
    with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=10) as resp:
        text = resp.read().decode("utf-8")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (score,) = families["recsys_data_quality_score"].samples
    assert score.value == pytest.approx(25.0)
    assert score.labels["job"] == "recsys_data_quality"
    passed = {
        s.labels["check"]: s.value
        for s in families["recsys_data_quality_check_passed"].samples
        if s.labels.get("job") == "recsys_data_quality"
    }
    assert passed == {"items.price null_rate": 0.0, "items.price range": 1.0}


def test_push_to_a_stopped_gateway_names_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(PushError, match=url):
        push(_report(), url, timeout=2)
