"""Methods side by side: per-user metrics, bootstrap intervals, the paired ratio to EASE."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.evaluation.compare import compare, per_user


def test_per_user_values_follow_the_metric_definitions() -> None:
    relevant = {"u1": {"a", "b"}, "u2": {"c"}}
    values = per_user({"u1": ["x", "a", "b"], "u2": []}, relevant, ["u1", "u2"], [2])
    assert values["hit_rate@2"].tolist() == [1.0, 0.0]
    assert values["recall@2"].tolist() == [0.5, 0.0]
    assert values["mrr@2"].tolist() == [0.5, 0.0]
    assert values["ndcg@2"][0] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))


def test_intervals_hold_the_mean_and_the_ratio_is_paired() -> None:
    rng = np.random.default_rng(3)
    items = [f"i{n}" for n in range(50)]
    relevant = {f"u{n}": set(rng.choice(items, 3, replace=False)) for n in range(200)}
    good = {u: list(rel)[:2] + items[:18] for u, rel in relevant.items()}
    ease = {u: list(rel)[:1] + items[:19] for u, rel in relevant.items()}
    out = compare({"served": good, "ease": ease}, relevant, [10, 20], catalogue=50, resamples=300)
    served, ref = out["methods"]["served"], out["methods"]["ease"]
    lo, hi = served["ndcg@20_ci95"]
    assert lo <= served["ndcg@20"] <= hi
    assert served["ndcg@20_vs_ease"] == pytest.approx(served["ndcg@20"] / ref["ndcg@20"])
    r_lo, r_hi = served["ndcg@20_vs_ease_ci95"]
    assert 1.0 < r_lo <= served["ndcg@20_vs_ease"] <= r_hi  # always better: the paired draws say so
    assert "ndcg@20_vs_ease" not in ref and out["reference"] == "ease" and out["users"] == 200
    assert served["coverage@20"] == pytest.approx(len({i for lst in good.values() for i in lst}) / 50)
