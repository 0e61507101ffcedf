"""One image name everywhere: what `make image` tags (recsys.IMAGE), what the compiled pipeline's
components run in, and what the chart's defaults pull."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from recsys import IMAGE, IMAGE_REPOSITORY, __version__
from tests.deploy.chart import CHART, REPO, find, objects, render


def test_the_chart_defaults_name_the_built_image() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart["appVersion"] == __version__
    assert values["image"]["repository"] == IMAGE_REPOSITORY and values["image"]["tag"] == ""
    isvc = find(objects(render()), "InferenceService", "recsys")["spec"]
    assert isvc["predictor"]["containers"][0]["image"] == IMAGE
    assert isvc["transformer"]["containers"][0]["image"] == IMAGE


def test_the_compiled_pipeline_runs_every_component_in_it(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.yaml"
    done = subprocess.run([sys.executable, "-m", "recsys", "pipeline", "compile", "-o", str(out)],
                          capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load(out.read_text())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {IMAGE}


def test_make_image_tags_it_so() -> None:
    done = subprocess.run(["bash", "scripts/build_image.sh", "--print-name"], capture_output=True, text=True,
                          cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == IMAGE
