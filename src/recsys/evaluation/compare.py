"""Methods side by side on the same users: list metrics with bootstrap confidence intervals.

Every method's lists are scored on the same relevant sets (one per test user, see
``recsys.evaluation.protocols``); a user a method has no list for scores 0. The 95 % intervals
are percentile bootstraps over users (``resamples`` draws, seeded), and each method's ratio to
the reference method (EASE) is bootstrapped *paired*: the same users drawn for both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recsys.evaluation.metrics import METRICS, catalogue_coverage

LIST_METRICS = ("ndcg", "recall", "hit_rate", "mrr")


def per_user(
    lists: Mapping[str, Sequence[str]], relevant: Mapping[str, set[str]], users: list[str], ks: Sequence[int]
) -> dict[str, np.ndarray]:
    """``"<metric>@<k>"`` -> one value per user of ``users`` (in that order)."""
    out = {f"{m}@{k}": np.zeros(len(users)) for k in ks for m in LIST_METRICS}
    for n, user in enumerate(users):
        recs, rel = list(lists.get(user, ())), relevant[user]
        for k in ks:
            for m in LIST_METRICS:
                out[f"{m}@{k}"][n] = METRICS[m].fn(recs, rel, k)
    return out


def _interval(samples: np.ndarray) -> list[float]:
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [float(lo), float(hi)]


def compare(
    methods: Mapping[str, Mapping[str, Sequence[str]]],
    relevant: Mapping[str, set[str]],
    ks: Sequence[int],
    catalogue: int,
    *,
    reference: str | None = "ease",
    resamples: int = 1000,
    seed: int = 7,
) -> dict[str, Any]:
    users = sorted(relevant)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(users), size=(resamples, len(users))) if resamples else None
    values = {name: per_user(lists, relevant, users, ks) for name, lists in methods.items()}
    out: dict[str, Any] = {"users": len(users), "ks": list(ks), "resamples": resamples, "methods": {}}
    for name, per in values.items():
        entry: dict[str, Any] = {}
        for key, v in per.items():
            entry[key] = float(v.mean())
            if draws is not None:
                entry[f"{key}_ci95"] = _interval(v[draws].mean(axis=1))
        for k in ks:
            entry[f"coverage@{k}"] = catalogue_coverage(methods[name], catalogue, k)
        if reference in values and name != reference:
            ref = values[reference]
            for key, v in per.items():
                base = float(ref[key].mean())
                entry[f"{key}_vs_{reference}"] = float(v.mean()) / base if base else None
                if draws is not None and base:
                    num, den = v[draws].mean(axis=1), ref[key][draws].mean(axis=1)
                    ratio = num[den > 0] / den[den > 0]
                    entry[f"{key}_vs_{reference}_ci95"] = _interval(ratio) if len(ratio) else None
        out["methods"][name] = entry
    out["reference"] = reference if reference in values else None
    return out
