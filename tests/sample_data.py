"""Small hand-made source data shared by the tests (importable: tests/ is on sys.path)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

T0 = datetime(2026, 3, 1, 8, 0, 0)


def small_source_frames() -> dict[str, pd.DataFrame]:
    users = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(5)],
            "industry": ["retail"] * 5,
            "region": ["eu"] * 5,
            "created_at": [T0] * 5,
            "updated_at": [T0] * 5,
        }
    )
    items_df = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(6)],
            "title": [f"item {i}" for i in range(6)],
            "description": ["d"] * 6,
            "category": ["c1", "c2"] * 3,
            "industry": ["retail"] * 6,
            "tags": ["a|b"] * 6,
            "price": [10.0 + i for i in range(6)],
            "status": ["active"] * 6,
            "created_at": [T0 + timedelta(days=i % 3) for i in range(6)],
            "updated_at": [T0 + timedelta(days=i % 3) for i in range(6)],
        }
    )
    ts = [T0 + timedelta(hours=7 * i) for i in range(12)]
    events_df = pd.DataFrame(
        {
            "event_id": [f"e{i:03d}" for i in range(12)],
            "user_id": [f"u{i % 5}" for i in range(12)],
            "item_id": [f"i{i % 6}" for i in range(12)],
            "event_type": ["impression", "click"] * 6,
            "ts": ts,
            "request_id": [f"r{i // 2}" for i in range(12)],
            "position": [i % 2 for i in range(12)],
            "source": ["app"] * 12,
            "updated_at": ts,
        }
    )
    return {"users": users, "items": items_df, "events": events_df}
