"""The evaluate step's experiment section: exposure logs joined with behaviour events."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from recsys.steps.clean import write_partitioned
from recsys.steps.evaluate import experiment_section

T = datetime(2026, 3, 1, 12)


def _events() -> pd.DataFrame:
    rows = [
        # r1 (variant A) showed i1, i2: i1 clicked and bought for 30.0
        ("e1", "u1", "i1", "click", T + timedelta(seconds=5), "r1", None),
        ("e2", "u1", "i1", "purchase", T + timedelta(seconds=50), "r1", 30.0),
        # r2 (variant B) showed i3, i4: nothing; r3 (B) showed i5: clicked
        ("e3", "u3", "i5", "click", T + timedelta(seconds=9), "r3", None),
        # a click on an item that was never exposed counts nowhere
        ("e4", "u2", "i9", "click", T + timedelta(seconds=9), "r2", None),
    ]
    frame = pd.DataFrame(
        rows, columns=["event_id", "user_id", "item_id", "event_type", "ts", "request_id", "value"]
    )
    frame["ts_offset_minutes"] = None
    frame["position"] = None
    frame["scene"] = "home"
    frame["source"] = "app"
    frame["updated_at"] = frame["ts"]
    return frame


def test_variants_get_ctr_cvr_and_gmv_from_the_exposure_log(tmp_path: Path) -> None:
    cleaned = tmp_path / "cleaned"
    write_partitioned(_events(), "events", cleaned, "t", T)
    logs = tmp_path / "data" / "exposures"
    logs.mkdir(parents=True)
    records = [
        {
            "request_id": "r1",
            "user_id": "u1",
            "items": ["i1", "i2"],
            "positions": [0, 1],
            "scores": [0.9, 0.5],
            "channels": [["itemcf"], ["popular"]],
            "experiment_variant": "A",
            "degrade_level": 0,
            "model_version": "v1",
            "ts": T.isoformat(),
        },
        {
            "request_id": "r2",
            "user_id": "u2",
            "items": ["i3", "i4"],
            "positions": [0, 1],
            "scores": [0.8, 0.7],
            "channels": [["itemcf"], ["tag"]],
            "experiment_variant": "B",
            "degrade_level": 0,
            "model_version": "v1",
            "ts": T.isoformat(),
        },
        {
            "request_id": "r3",
            "user_id": "u3",
            "items": ["i5"],
            "positions": [0],
            "scores": [0.6],
            "channels": [["embedding"]],
            "experiment_variant": "B",
            "degrade_level": 1,
            "model_version": "v1",
            "ts": T.isoformat(),
        },
    ]
    (logs / "exposures-0001.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")

    section = experiment_section(tmp_path / "data", cleaned)
    assert section["status"] == "ok" and section["events_source"] == "events table"
    a, b = section["variants"]["A"], section["variants"]["B"]
    assert (a["exposures"], a["clicks"], a["purchases"]) == (2, 1, 1)
    assert (b["exposures"], b["clicks"], b["purchases"]) == (3, 1, 0)
    assert a["ctr"]["value"] == 0.5 and b["ctr"]["value"] == 1 / 3
    assert a["gmv"] == 30.0 and b["gmv"] == 0.0
    assert a["cvr"]["value"] == 1.0
    lo, hi = a["ctr"]["ci95"]
    assert 0 < lo < 0.5 < hi < 1
    assert section["control"] == "A" and "B" in section["lift"]


def test_no_logs_yet_is_reported_not_an_error(tmp_path: Path) -> None:
    assert experiment_section(tmp_path, tmp_path)["status"] == "no exposure logs yet"
