"""Ranked lists (key -> [(item, score)]) in compact arrays, and the top-k helpers channels share.

Channels hold their fitted neighbour/popularity lists as ``RankedLists`` rather than dicts of
tuples: a catalogue of a million items with 50 neighbours each would be 50M Python tuples,
while here it is three flat arrays. Ties are always broken by item id, so a result does not
depend on the order items happened to be indexed in (and survives a save/load round trip).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.errors import InvalidInput

RecallList = list[tuple[str, float]]
Hits = tuple[np.ndarray, np.ndarray]  # (positions in an ItemVocab, float64 scores), best first
NO_HITS: Hits = (np.zeros(0, np.int64), np.zeros(0, np.float64))


class ItemVocab:
    """Sorted, distinct item ids: what recall channels answer in (positions, not strings).

    A ``RecallEngine`` gives all its channels one vocabulary, so that their answers can be
    fused as integer arrays; positions follow id order, which keeps every tie-break by item id.
    """

    def __init__(self, ids: np.ndarray | list[str]) -> None:
        self.ids = np.asarray(ids, dtype=object)
        if len(self.ids) > 1 and not (self.ids[:-1] < self.ids[1:]).all():
            raise InvalidInput("recall: an item vocabulary must hold sorted, distinct item ids")
        self._position: dict[str, int] | None = None  # built on first use: big catalogues

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def union(cls, arrays: Iterable[np.ndarray]) -> ItemVocab:
        parts = [np.asarray(a, dtype=object) for a in arrays]
        parts = [p for p in parts if len(p)]
        if len(parts) == 1:
            return cls(parts[0])  # a list vocabulary already is sorted and distinct
        return cls(np.unique(np.concatenate(parts)) if parts else np.array([], dtype=object))

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Positions of ``ids``, each of which must be in the vocabulary (vectorized: load time)."""
        ids = np.asarray(ids, dtype=object)
        if not len(ids):
            return np.zeros(0, np.int64)
        pos = np.searchsorted(self.ids, ids).astype(np.int64)
        if (pos >= len(self.ids)).any() or (self.ids[np.minimum(pos, len(self.ids) - 1)] != ids).any():
            raise InvalidInput("recall: item ids outside the vocabulary")
        return pos

    def lookup(self, ids: Iterable[str]) -> np.ndarray:
        """Sorted positions of those ``ids`` that are in the vocabulary (per request: a dict)."""
        if self._position is None:
            self._position = {str(i): n for n, i in enumerate(self.ids.tolist())}
        get = self._position.get
        found = [p for p in map(get, ids) if p is not None]
        return np.unique(np.asarray(found, np.int64))

    def to_list(self, idx: np.ndarray, scores: np.ndarray) -> RecallList:
        ids = map(str, self.ids[idx].tolist())
        return list(zip(ids, np.asarray(scores, np.float64).tolist(), strict=True))


@dataclass
class RankedLists:
    """``keys[k]``'s list is ``vocab[items[indptr[k]:indptr[k+1]]]`` with ``scores`` likewise."""

    vocab: np.ndarray  # item ids (object array)
    keys: list[str]
    indptr: np.ndarray  # int64, len(keys) + 1
    items: np.ndarray  # int64 indices into vocab
    scores: np.ndarray  # float32
    _pos: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._pos = {k: i for i, k in enumerate(self.keys)}

    @classmethod
    def empty(cls) -> RankedLists:
        return cls(
            np.array([], dtype=object),
            [],
            np.zeros(1, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
        )

    @classmethod
    def from_entries(
        cls,
        vocab: np.ndarray,
        keys: list[str],
        rows: np.ndarray,
        items: np.ndarray,
        scores: np.ndarray,
        limit: int | None = None,
    ) -> RankedLists:
        """Group (key row, item index, score) entries into lists ranked by score, then item id.

        ``vocab`` must be sorted so that an index order is the item-id order.
        """
        vocab = np.asarray(vocab, dtype=object)
        if len(vocab) > 1 and not (vocab[:-1] < vocab[1:]).all():
            raise InvalidInput("recall: a list vocabulary must hold sorted, distinct item ids")
        rows, items = np.asarray(rows, np.int64), np.asarray(items, np.int64)
        scores = np.asarray(scores, np.float32)
        order = np.lexsort((items, -scores, rows))
        rows, items, scores = rows[order], items[order], scores[order]
        if limit is not None and len(rows):
            starts = np.searchsorted(rows, rows, side="left")
            keep = (np.arange(len(rows)) - starts) < limit
            rows, items, scores = rows[keep], items[keep], scores[keep]
        counts = np.bincount(rows, minlength=len(keys)) if len(keys) else np.zeros(0, np.int64)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(vocab, list(keys), indptr, items, scores)

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, scores) of ``key``; empty arrays for an unknown key."""
        k = self._pos.get(key)
        if k is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        lo, hi = self.indptr[k], self.indptr[k + 1]
        return self.items[lo:hi], self.scores[lo:hi]

    def get_list(self, key: str) -> RecallList:
        idx, sc = self.get(key)
        return [(str(self.vocab[i]), float(s)) for i, s in zip(idx, sc, strict=True)]

    def with_vocab(self, vocab: ItemVocab) -> RankedLists:
        """The same lists over ``vocab``, a sorted superset of this vocabulary (order kept)."""
        if self.vocab is vocab.ids:
            return self
        items = vocab.positions(self.vocab)[self.items]
        return RankedLists(vocab.ids, self.keys, self.indptr, items, self.scores)

    def to_dict(self) -> dict[str, RecallList]:
        sizes = np.diff(self.indptr)
        return {key: self.get_list(key) for key, size in zip(self.keys, sizes, strict=True) if size}

    def save(self, path: Path) -> None:
        key_col = np.repeat(np.asarray(self.keys, dtype=object), np.diff(self.indptr))
        frame = pd.DataFrame(
            {
                "key": key_col,
                "item_id": self.vocab[self.items] if len(self.items) else [],
                "score": self.scores.astype(np.float32),
            }
        )
        frame.to_parquet(path, index=False)

    @classmethod
    def load(cls, path: Path) -> RankedLists:
        if not path.exists():
            raise InvalidInput(f"recall: {path} is missing")
        frame = pd.read_parquet(path)
        vocab = np.unique(frame["item_id"].to_numpy(dtype=object)) if len(frame) else np.array([], object)
        items = np.searchsorted(vocab, frame["item_id"].to_numpy(dtype=object)) if len(frame) else []
        keys, rows = pd.unique(frame["key"]).tolist(), pd.factorize(frame["key"])[0]
        # saved lists are already ranked; from_entries re-sorts stably to the same order
        return cls.from_entries(
            vocab, keys, rows, np.asarray(items, np.int64), frame["score"].to_numpy(np.float32)
        )


def accumulate(parts: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sum scores per item index over several (indices, scores) parts."""
    parts = [(i, s) for i, s in parts if len(i)]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    idx = np.concatenate([i for i, _ in parts])
    sc = np.concatenate([np.asarray(s, np.float64) for _, s in parts])
    uniq, inv = np.unique(idx, return_inverse=True)
    return uniq, np.bincount(inv, weights=sc, minlength=len(uniq))


def member(idx: np.ndarray, among: np.ndarray) -> np.ndarray:
    """``np.isin(idx, among)`` for a small sorted ``among``: a binary search per entry, a few
    array calls where ``isin`` makes dozens (its fixed cost dominates a request's small arrays)."""
    at = np.searchsorted(among, idx)
    at[at == len(among)] = 0
    return among[at] == idx


def top_k(idx: np.ndarray, scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> Hits:
    """The ``k`` best (index, score) by descending score then index, none in ``exclude``.

    ``idx`` are positions in a sorted item vocabulary (``ItemVocab``), so index order is id
    order and ties break by item id without comparing strings. ``exclude``: sorted indices.
    """
    idx = np.asarray(idx, np.int64)
    scores = np.asarray(scores, np.float64)
    if k <= 0 or len(idx) == 0:
        return idx[:0], scores[:0]
    if exclude is not None and len(exclude):
        keep = ~member(idx, exclude)
        idx, scores = idx[keep], scores[keep]
    if len(idx) > k:
        # keep every item tied with the cut-off score so the id tie-break stays exact
        cut = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= cut
        idx, scores = idx[keep], scores[keep]
    order = np.lexsort((idx, -scores))[:k]
    return idx[order], scores[order]


def sparse_topn(
    left: sp.csr_matrix,
    right: sp.csr_matrix,
    n: int,
    *,
    skip_diagonal: bool = False,
    col_mask: np.ndarray | None = None,
    exclude: sp.csr_matrix | None = None,
    min_score: float = 0.0,
    dense_budget: int = 8_000_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``n`` columns of each row of ``left @ right``, computed a block of rows at a time.

    Returns (rows, cols, scores) entries ranked per row by score then column; only scores
    above ``min_score`` are kept, and none where ``exclude`` (aligned with ``left``'s rows) has
    an entry. Blocks keep the product's memory near ``dense_budget`` values; a block is
    selected on a dense copy when that fits, since co-occurrence products of popular items
    are nearly dense and sparse selection over them is several times slower.
    """
    m = right.shape[1]
    block = max(1, min(4096, dense_budget // max(m, 1)))
    out_r, out_c, out_s = [], [], []
    for lo in range(0, left.shape[0], block):
        prod = (left[lo : lo + block] @ right).tocsr()
        if exclude is not None:
            prod = prod - prod.multiply(exclude[lo : lo + block] != 0)
        if prod.shape[0] * m <= dense_budget:
            r, c, s = _dense_candidates(prod.toarray(), n, lo, skip_diagonal, col_mask, min_score)
        else:
            coo = prod.tocoo()
            r, c, s = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64)
            keep = s > min_score
            if skip_diagonal:
                keep &= (r + lo) != c
            if col_mask is not None:
                keep &= col_mask[c]
            r, c, s = r[keep], c[keep], s[keep]
        order = np.lexsort((c, -s, r))
        r, c, s = r[order], c[order], s[order]
        starts = np.searchsorted(r, r, side="left")
        keep = (np.arange(len(r)) - starts) < n
        out_r.append(r[keep] + lo)
        out_c.append(c[keep])
        out_s.append(s[keep])
    if not out_r:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_s)


def _dense_candidates(
    dense: np.ndarray, n: int, lo: int, skip_diagonal: bool, col_mask: np.ndarray | None, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries of each row at or above its n-th best score (ties kept for the caller's sort)."""
    if skip_diagonal:
        rows = np.arange(dense.shape[0])
        cols = rows + lo
        ok = cols < dense.shape[1]
        dense[rows[ok], cols[ok]] = -np.inf
    if col_mask is not None:
        dense[:, ~col_mask] = -np.inf
    dense[dense <= min_score] = -np.inf
    m = dense.shape[1]
    if n < m:
        # a full sort beats np.partition here: numpy's sort is vectorized, and partition
        # degrades on rows that are mostly ties (-inf / zero co-occurrence)
        nth = np.sort(dense, axis=1)[:, m - n]
        dense[dense < nth[:, None]] = -np.inf
    r, c = np.nonzero(np.isfinite(dense))
    return r.astype(np.int64), c.astype(np.int64), dense[r, c]
