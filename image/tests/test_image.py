"""The built image (``make image``), tested from outside through ``buildah run`` (``make image-test``):
the CLI and the whole local pipeline in it, both servers started from it on loopback answering
tritonclient here, as the non-root user, writing only to the volumes the chart declares.

Not part of ``make test`` (it needs the image): ``make image-test`` runs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton

from recsys import IMAGE, __version__

BUILDAH = shutil.which("buildah")
pytestmark = pytest.mark.skipif(BUILDAH is None, reason="buildah is not installed (apt-get install buildah)")
VOLUMES = ("/var/lib/recsys", "/tmp")  # writable in the chart's pods (emptyDirs); /mnt/models read-only
# what buildah itself writes into a working container on every run (the kubelet mounts these)
RUNTIME_FILES = ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts", "/run/.containerenv")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def container() -> Iterator[str]:
    """A working container of the image (not started: ``buildah run`` runs commands in it)."""
    if subprocess.run([BUILDAH, "inspect", "--type", "image", IMAGE], capture_output=True).returncode != 0:
        pytest.fail(f"no image {IMAGE}: run make image")
    name = subprocess.run([BUILDAH, "from", IMAGE], capture_output=True, text=True, check=True).stdout.strip()
    yield name
    subprocess.run([BUILDAH, "rm", name], capture_output=True)


def run(
    container: str, *cmd: str, mounts: tuple[str, ...] = (), timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    args = [BUILDAH, "run", "--isolation", "chroot"]
    for mount in mounts:
        args += ["-v", mount]
    return subprocess.run([*args, container, "--", *cmd], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def data(container: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny marketplace trained by the local pipeline inside the image, on a volume at
    /var/lib/recsys (the data dir the image and the chart use)."""
    d = tmp_path_factory.mktemp("image-data")
    os.chmod(d, 0o777)  # the image's user (10001) writes here
    script = ("touch /tmp/.start && cd /var/lib/recsys && recsys data generate --users 300 --items 120 "
              "--days 14 --seed 7 && recsys pipeline run --local")  # fmt: skip
    done = run(container, "sh", "-c", script, mounts=(f"{d}:/var/lib/recsys",))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return d


def test_the_cli_runs_as_the_non_root_user(container: str) -> None:
    done = run(container, "recsys", "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"recsys {__version__} (image {IMAGE})"
    assert run(container, "id", "-u").stdout.strip() == "10001"
    assert (
        run(container, "touch", "/opt/recsys/x").returncode != 0
    )  # the installed project is not its to change


def test_the_local_pipeline_runs_in_the_image_and_writes_only_to_its_volumes(
    container: str, data: Path
) -> None:
    assert (data / "bundles" / "LATEST.json").exists() and (data / "online_store.db").exists()
    owners = {p.stat().st_uid for p in (data / "bundles").rglob("*")}
    assert owners == {10001}
    # every file newer than the run's start, outside /proc, /sys, /dev and the writable volumes
    # (directories the user cannot read are ones it cannot write either: their errors are dropped)
    prune = " -o ".join(f"-path {p}" for p in ("/proc", "/sys", "/dev", *VOLUMES, *RUNTIME_FILES))
    script = f"find / -xdev \\( {prune} \\) -prune -o -newer /tmp/.start -type f -print 2>/dev/null; true"
    found = run(container, "sh", "-c", script)
    assert found.returncode == 0 and found.stdout.strip() == "", found.stdout[:2000]


def test_both_servers_from_the_image_answer_tritonclient(container: str, data: Path) -> None:
    """The bundle read-only where KServe's storage initializer puts it (/mnt/models), the online
    store in the data volume; both servers on loopback (buildah run uses the host's network)."""
    import json

    bundle = Path(
        json.loads((data / "bundles" / "LATEST.json").read_text())["path"].replace(
            "/var/lib/recsys", str(data)
        )
    )
    ports = [free_port() for _ in range(4)]
    mounts = ("-v", f"{data}:/var/lib/recsys", "-v", f"{bundle}:/mnt/models:ro")
    base = [BUILDAH, "run", "--isolation", "chroot", *mounts, container, "--"]
    servers = [
        subprocess.Popen([*base, "python", "-m", "inference.predictor_main", "--model_uri", "/mnt/models",
                          "--http_port", str(ports[0]), "--grpc_port", str(ports[1]),
                          "--enable_latency_logging", "false"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
        subprocess.Popen([*base, "python", "-m", "inference.transformer_main", "--bundle", "/mnt/models",
                          "--predictor_host", f"127.0.0.1:{ports[0]}", "--http_port", str(ports[2]),
                          "--grpc_port", str(ports[3]), "--enable_latency_logging", "false"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
    ]  # fmt: skip
    try:
        for port, proc in ((ports[0], servers[0]), (ports[2], servers[1])):
            deadline = time.monotonic() + 120
            while True:
                try:
                    if (
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status
                        == 200
                    ):
                        break
                except OSError:
                    pass
                assert proc.poll() is None, proc.stdout.read().decode()[-3000:] if proc.stdout else ""
                assert time.monotonic() < deadline, f"not ready on {port}"
                time.sleep(0.5)
        client = triton.InferenceServerClient(f"127.0.0.1:{ports[2]}")
        user = triton.InferInput("user_id", [1], "BYTES")
        user.set_data_from_numpy(np.array([b"u000001"], dtype=np.object_), binary_data=False)
        answer = client.infer("recsys", [user])
        items = answer.as_numpy("item_ids")
        assert items is not None and len(items) == 10
        assert int(answer.get_response()["parameters"]["degrade_level"]) == 0
    finally:
        for proc in servers:
            proc.send_signal(signal.SIGTERM)
        for proc in servers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
