"""EASE channel (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data").

B = I - P diag(1/diag(P)) with P = (X^T X + l2 I)^-1 over the (decayed, weighted) user-item
matrix X; a user's scores are x_u B. Row i of B says how much having item i raises (or lowers)
every other item, so the channel publishes the ``neighbours`` largest positive entries of each
row as item i's list, and online recall is the sum of the history items' lists: x_u B with a
binary x_u and B sparsified. That sum is why ``history_decay`` defaults to 1 here.

The inverse is cubic in the items, so only items with at least ``min_item_interactions``
interacting users take part, and at most the ``max_items`` most-interacted of them.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import scipy.linalg as sl
from pydantic import Field

from recsys.recall.base import ChannelParams, HistoryParams, NeighbourChannel, lists_from_entries
from recsys.recall.data import RecallData

NOISE = 1e-6  # weights below this share of the largest |B| entry are float32 round-off


class EaseParams(HistoryParams):
    min_interactions: int = Field(100, ge=0)
    history_decay: float = Field(1.0, gt=0, le=1, description="1: online scores are x_u B, as in EASE")
    l2: float = Field(
        1000.0, gt=0, description="EASE's lambda; its scale follows the squared interaction strengths"
    )
    min_item_interactions: int = Field(5, ge=1, description="items with fewer interacting users are left out")
    max_items: int = Field(5000, ge=2, description="most-interacted items kept; the solve is cubic in them")
    neighbours: int = Field(200, ge=1, description="largest positive entries of each B row published")
    block_rows: int = Field(1024, ge=1, description="B rows selected at a time (memory, not results)")


def ease_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """Dense B (float32, zero diagonal) from the Gram matrix X^T X; raises on a failed solve."""
    g = gram.astype(np.float32, copy=True)
    g[np.diag_indices_from(g)] += np.float32(l2)
    # Cholesky and its inverse in float32: 3-4x faster than a float64 solve or np.linalg.inv,
    # and B's top entries (all the lists keep) are the same at this precision
    c, info = sl.lapack.spotrf(g, lower=True, overwrite_a=True)
    if info == 0:
        p, info = sl.lapack.spotri(c, lower=True, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky solve failed (LAPACK info {info})")
    p = np.tril(p) + np.tril(p, -1).T
    b = p / -np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def top_positive(
    b: np.ndarray, n: int, col_mask: np.ndarray, block_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, scores) of the ``n`` largest positive entries of each row of ``b`` among
    ``col_mask`` columns (ties beyond the n-th may be cut; from_entries orders what is kept)."""
    # a zero weight comes out of the float32 solve as +-1e-8 or so: not a neighbour
    floor = np.float32(NOISE) * np.abs(b).max(initial=0.0)
    out_r, out_c, out_s = [], [], []
    n = min(n, b.shape[1])
    for lo in range(0, b.shape[0], block_rows):
        block = np.where(col_mask[None, :], b[lo : lo + block_rows], np.float32(0.0))
        top = np.argpartition(-block, n - 1, axis=1)[:, :n]
        scores = np.take_along_axis(block, top, axis=1)
        r, k = np.nonzero(scores > floor)
        out_r.append(r + lo)
        out_c.append(top[r, k])
        out_s.append(scores[r, k])
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_s)


class Ease(NeighbourChannel):
    """Item lists = the top positive entries of EASE's item-item weight matrix B."""

    type = "ease"
    Params: ClassVar[type[ChannelParams]] = EaseParams

    def _fit(self, data: RecallData) -> str | None:
        p: EaseParams = self.params  # type: ignore[assignment]
        r, _ = data.matrix(p.half_life_days)
        r = r.tocsc()
        users_per_item = np.diff(r.indptr)
        eligible = np.flatnonzero(users_per_item >= p.min_item_interactions)
        if len(eligible) < 2:
            return f"{len(eligible)} items have >= {p.min_item_interactions} interacting users; EASE needs 2"
        if len(eligible) > p.max_items:
            # most-interacted first, ties by item id (the vocabulary order) so the cut is stable
            order = np.lexsort((eligible, -users_per_item[eligible]))
            eligible = np.sort(eligible[order[: p.max_items]])
        x = r[:, eligible].astype(np.float32)
        start = time.perf_counter()
        try:
            b = ease_weights((x.T @ x).toarray(), p.l2)
        except np.linalg.LinAlgError as e:
            return f"EASE solve failed: {e}"
        solve = time.perf_counter() - start
        rows, cols, scores = top_positive(b, p.neighbours, data.active_mask[eligible], p.block_rows)
        if not len(rows):
            return "no item has a positive EASE weight to an active item"
        ids = data.item_vocab[eligible]
        self.lists = lists_from_entries(ids, ids, rows, cols, scores, limit=p.neighbours)
        self.stats.update(
            items=len(eligible),
            items_with_neighbours=len(self.lists),
            pairs=len(rows),
            solve_seconds=round(solve, 3),
        )
        return None
