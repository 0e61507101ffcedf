"""The GitHub Actions workflow: valid against GitHub's workflow schema (check-jsonschema's vendored
copy, no network), and running the targets .ci/run runs, plus the demo and the evaluation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.chart import REPO

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def test_the_workflow_is_valid() -> None:
    tool = shutil.which("check-jsonschema") or str(
        Path(__file__).parents[2] / ".venv" / "bin" / "check-jsonschema"
    )
    done = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_workflow_runs_what_ci_runs() -> None:
    steps = [
        s.get("run", "")
        for job in yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
        for s in job["steps"]
    ]
    ci = (REPO / ".ci" / "run").read_text()
    for target in ("make test", "make image", "make image-test"):
        assert target in ci, target
        assert any(target in step for step in steps), target
    assert any("make demo" in step for step in steps) and any("recsys evaluate" in step for step in steps)
