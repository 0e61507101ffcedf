"""Baselines: EASE solved in the item or the user space gives the same scores as the textbook
formula, ItemKNN is the cosine formula, and lists leave out seen and blocked items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.evaluation.baselines import BASELINES, Ease, Interactions, ItemKNN, Popularity, grid

WEIGHTS = {"view": 0.5, "click": 1.0, "add_to_cart": 2.0, "purchase": 4.0}


def events(n_users: int, n_items: int, density: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        (f"u{u}", f"i{i:03d}", rng.choice(["view", "click", "purchase"]))
        for u in range(n_users)
        for i in range(n_items)
        if rng.random() < density
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "event_type"])


def textbook_ease(x: np.ndarray, lam: float) -> np.ndarray:
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
    return x @ b


@pytest.mark.parametrize(("n_users", "n_items"), [(60, 20), (15, 40)])  # primal, then dual
@pytest.mark.parametrize("weighting", ["binary", "weighted"])
def test_ease_matches_the_textbook_formula(n_users: int, n_items: int, weighting: str) -> None:
    ev = events(n_users, n_items, 0.3, seed=1)
    model = Ease(weighting=weighting, **{"lambda": 5.0}).fit(ev, WEIGHTS)
    assert model.dual == (n_users < n_items)
    users = ["u3", "u0", "nobody"]
    full = textbook_ease(model.data.matrix.toarray(), 5.0)
    rows = [full[model.data.users["u3"]], full[model.data.users["u0"]], np.zeros(full.shape[1])]
    expected = np.vstack(rows)
    np.testing.assert_allclose(model.scores(users), expected, atol=1e-8)  # an unknown user scores 0


def test_itemknn_is_cosine_without_the_own_diagonal() -> None:
    ev = events(30, 12, 0.4, seed=2)
    model = ItemKNN(weighting="weighted").fit(ev, WEIGHTS)
    x = model.data.matrix.toarray()
    norms = np.linalg.norm(x, axis=0)
    s = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(s, 0.0)
    rows = [model.data.users["u0"], model.data.users["u7"]]
    np.testing.assert_allclose(model.scores(["u0", "u7"]), x[rows] @ s, atol=1e-10)


def test_lists_leave_out_seen_and_blocked_items_best_first() -> None:
    ev = events(40, 15, 0.3, seed=3)
    pop = Popularity(weighting="binary").fit(ev, WEIGHTS)
    counts = ev.drop_duplicates(["user_id", "item_id"]).groupby("item_id").size()
    ranked = list(counts.sort_values(ascending=False, kind="stable").index)
    got = pop.recommend(["u1", "nobody"], 5, {"u1": {ranked[0]}}, blocked=[ranked[1]])
    assert ranked[0] not in got["u1"] and ranked[1] not in got["u1"]
    assert got["nobody"][0] == ranked[0] and len(got["nobody"]) == 5
    assert [counts[i] for i in got["nobody"]] == sorted((counts[i] for i in got["nobody"]), reverse=True)


def test_interactions_sum_weights_per_pair() -> None:
    ev = pd.DataFrame({"user_id": ["u", "u", "u", "v"], "item_id": ["a", "a", "b", "a"],
                       "event_type": ["view", "click", "impression", "purchase"]})  # fmt: skip
    weighted = Interactions.from_events(ev, WEIGHTS, "weighted")
    assert weighted.matrix.toarray().tolist() == [[1.5], [4.0]] and list(weighted.items) == ["a"]
    assert Interactions.from_events(ev, WEIGHTS, "binary").matrix.toarray().tolist() == [[1.0], [1.0]]


def test_every_baseline_has_a_grid_to_tune() -> None:
    assert set(BASELINES) == {"pop", "itemknn", "ease"}
    assert {tuple(sorted(p)) for p in grid(Ease)} == {("lambda", "weighting")}
    assert len(grid(Ease)) == 2 * len(Ease.grid["lambda"])
