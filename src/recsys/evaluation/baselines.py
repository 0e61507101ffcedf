"""Textbook baselines the served chain is measured against, on the same split in the same run.

* ``pop``: the most interacted items.
* ``itemknn``: item-item cosine over the user-item matrix, every neighbour (``x_u S``, its own
  diagonal removed).
* ``ease``: Steck's EASE, ``B = I - P diag(1/diag P)`` with ``P = (X^T X + lambda I)^-1``, exact
  over every item: solved in the item space when there are fewer items than users, otherwise in
  the user space through the Woodbury identity (``P = (I - X^T (X X^T + lambda I)^-1 X) / lambda``),
  which costs a users x users solve instead of an items x items one.

Each baseline is one class registered in ``BASELINES``; its hyperparameters (the input weighting
for all of them, lambda for EASE) are chosen by ``tune`` on the validation split, never on the
test. Lists leave out each user's seen items and inactive items, as the chain's do.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.linalg as sl
import scipy.sparse as sp

from recsys.evaluation.protocols import INTERACTIONS

log = logging.getLogger(__name__)
WEIGHTINGS = ("binary", "weighted")


@dataclass
class Interactions:
    """The training part as a users x items matrix (float64), binary or by interaction weight."""

    matrix: sp.csr_matrix
    users: dict[str, int]
    items: np.ndarray  # item ids of the columns

    @classmethod
    def from_events(cls, events: pd.DataFrame, weights: Mapping[str, float], weighting: str) -> Interactions:
        ev = events[events["event_type"].isin(INTERACTIONS)]
        value = ev["event_type"].map(dict(weights)).fillna(0.0).to_numpy(np.float64)
        ev = ev[value > 0]
        value = value[value > 0]
        users, rows = np.unique(ev["user_id"].astype(str).to_numpy(), return_inverse=True)
        items, cols = np.unique(ev["item_id"].astype(str).to_numpy(), return_inverse=True)
        x = sp.csr_matrix((value, (rows, cols)), shape=(len(users), len(items)))
        x.sum_duplicates()
        if weighting == "binary":
            x.data[:] = 1.0
        return cls(x, {str(u): n for n, u in enumerate(users)}, items)

    def rows(self, users: list[str]) -> sp.csr_matrix:
        """The rows of ``users``; an unknown user's is empty."""
        idx = np.array([self.users.get(u, -1) for u in users], np.int64)
        known = np.flatnonzero(idx >= 0)
        pick = sp.csr_matrix(
            (np.ones(len(known)), (known, idx[known])), shape=(len(users), self.matrix.shape[0])
        )
        return (pick @ self.matrix).tocsr()


class Baseline(ABC):
    name: ClassVar[str]
    grid: ClassVar[dict[str, list[Any]]] = {"weighting": list(WEIGHTINGS)}

    def __init__(self, **params: Any) -> None:
        self.params = {k: v[0] for k, v in self.grid.items()} | params
        self.data: Interactions | None = None

    def fit(self, events: pd.DataFrame, weights: Mapping[str, float]) -> Baseline:
        self.data = Interactions.from_events(events, weights, self.params["weighting"])
        self._fit(self.data)
        return self

    def _fit(self, data: Interactions) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    def scores(self, users: list[str]) -> np.ndarray:
        """(len(users), items) scores, higher is better."""

    def recommend(
        self,
        users: list[str],
        k: int,
        exclude: Mapping[str, set[str]],
        blocked: Iterable[str] = (),
        chunk: int = 512,
    ) -> dict[str, list[str]]:
        """Top ``k`` per user, none in the user's ``exclude`` nor in ``blocked``."""
        assert self.data is not None, "fit first"
        col = {str(i): n for n, i in enumerate(self.data.items)}
        never = np.array([col[i] for i in blocked if i in col], np.int64)
        out: dict[str, list[str]] = {}
        for lo in range(0, len(users), chunk):
            part = users[lo : lo + chunk]
            s = np.asarray(self.scores(part), np.float64)
            s[:, never] = -np.inf
            for r, user in enumerate(part):
                banned = [col[i] for i in exclude.get(user, ()) if i in col]
                s[r, banned] = -np.inf
            top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
            for r, user in enumerate(part):
                row = top[r][np.isfinite(s[r, top[r]])]
                # best first, ties by item id (the column order)
                row = row[np.lexsort((row, -s[r, row]))]
                out[user] = [str(self.data.items[c]) for c in row.tolist()]
        return out

    def describe(self) -> dict[str, Any]:
        return dict(self.params)


class Popularity(Baseline):
    name = "pop"

    def _fit(self, data: Interactions) -> None:
        self.popularity = np.asarray(data.matrix.sum(axis=0)).ravel()

    def scores(self, users: list[str]) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(users), len(self.popularity))).copy()


class ItemKNN(Baseline):
    name = "itemknn"

    def _fit(self, data: Interactions) -> None:
        norms = np.sqrt(np.asarray(data.matrix.multiply(data.matrix).sum(axis=0)).ravel())
        self.inv_norm = sp.diags(np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0))
        self.xn = (data.matrix @ self.inv_norm).tocsr()  # columns scaled to unit length

    def scores(self, users: list[str]) -> np.ndarray:
        assert self.data is not None
        xu = self.data.rows(users)
        # x_u N X^T X N without the items x items similarity matrix: (x_u N X^T) is users-wide,
        # made dense so that the second product runs in BLAS
        left = (xu @ self.xn.T).toarray()
        s = np.asarray(self.xn.T.dot(left.T).T)
        return s - xu.toarray()  # S has a unit diagonal: an item does not vote for itself


class Ease(Baseline):
    name = "ease"
    grid: ClassVar[dict[str, list[Any]]] = {
        "weighting": list(WEIGHTINGS),
        "lambda": [10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0],
    }

    def _fit(self, data: Interactions) -> None:
        x = data.matrix
        lam = float(self.params["lambda"])
        n_users, n_items = x.shape
        self.dual = n_users < n_items
        if not self.dual:
            g = (x.T @ x).toarray()
            g[np.diag_indices_from(g)] += lam
            p = sl.inv(g, overwrite_a=True, check_finite=False)
            self.b = p / -np.diag(p)[None, :]
            np.fill_diagonal(self.b, 0.0)
            return
        k = (x @ x.T).toarray()
        k[np.diag_indices_from(k)] += lam
        self.kinv_x = sl.solve(k, x.toarray(), assume_a="pos", overwrite_a=True, check_finite=False)
        diag_p = (1.0 - np.asarray(x.multiply(self.kinv_x).sum(axis=0)).ravel()) / lam
        self.inv_diag_p = 1.0 / diag_p

    def scores(self, users: list[str]) -> np.ndarray:
        assert self.data is not None
        xu = self.data.rows(users)
        if not self.dual:
            return np.asarray(xu @ self.b)
        lam = float(self.params["lambda"])
        xu_dense = xu.toarray()
        xp = (xu_dense - (xu @ self.data.matrix.T).toarray() @ self.kinv_x) / lam  # x_u P
        return xu_dense - xp * self.inv_diag_p[None, :]  # x_u B, B = I - P diag(1/diag P)


BASELINES: dict[str, type[Baseline]] = {b.name: b for b in (Popularity, ItemKNN, Ease)}


def grid(cls: type[Baseline]) -> list[dict[str, Any]]:
    combos: list[dict[str, Any]] = [{}]
    for key, values in cls.grid.items():
        combos = [{**c, key: v} for c in combos for v in values]
    return combos
