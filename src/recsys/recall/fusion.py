"""Fusing the channels' lists into one candidate set, and the ranker's per-channel features.

Raw channel scores are not comparable (a co-occurrence weight, a cosine, a popularity mass),
so each list is normalized first: by rank (``1 / (rank + offset)``, the default, robust to
score scales) or by min-max within the list. A candidate keeps which channels produced it and
at what rank, which the ranker uses as features.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal, NamedTuple, overload

import numpy as np

from recsys.errors import InvalidInput
from recsys.recall.lists import RecallList

Method = Literal["reciprocal_rank", "minmax"]


class Candidate(NamedTuple):
    item_id: str
    score: float  # fused
    channels: dict[str, tuple[int, float]]  # channel -> (rank from 0, raw channel score)


def normalize(items: RecallList, method: Method = "reciprocal_rank", rank_offset: float = 1.0) -> list[float]:
    if method == "reciprocal_rank":
        return [1.0 / (rank + rank_offset) for rank in range(len(items))]
    if method == "minmax":
        if not items:
            return []
        scores = [s for _, s in items]
        lo, hi = min(scores), max(scores)
        # a list of equal scores carries no order information: every entry counts fully
        return [1.0 if hi == lo else (s - lo) / (hi - lo) for s in scores]
    raise InvalidInput(f"recall: unknown fusion method {method!r}")


class Candidates(Sequence[Candidate]):
    """``fuse``'s result: fused candidates best first, held as arrays.

    Reads like a list of ``Candidate`` (each one built on access); ``candidate_features`` and
    ``channel_names`` read the arrays directly, which is what keeps the serving hot path cheap.
    Provenance is one entry per (candidate, channel): ``entry_pos`` (candidate position),
    ``entry_channel`` (index into ``channels``), ``entry_rank`` and ``entry_score``.
    """

    __slots__ = ("ids", "scores", "channels", "entry_pos", "entry_channel", "entry_rank", "entry_score")

    def __init__(
        self,
        ids: list[str],
        scores: np.ndarray,
        channels: list[str],
        entry_pos: np.ndarray,
        entry_channel: np.ndarray,
        entry_rank: np.ndarray,
        entry_score: np.ndarray,
    ) -> None:
        self.ids, self.scores, self.channels = ids, scores, channels
        self.entry_pos, self.entry_channel = entry_pos, entry_channel
        self.entry_rank, self.entry_score = entry_rank, entry_score

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> Candidate: ...
    @overload
    def __getitem__(self, i: slice) -> list[Candidate]: ...
    def __getitem__(self, i: int | slice) -> Candidate | list[Candidate]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        rows = np.flatnonzero(self.entry_pos == i)
        provenance = {
            self.channels[self.entry_channel[r]]: (int(self.entry_rank[r]), float(self.entry_score[r]))
            for r in rows
        }
        return Candidate(self.ids[i], float(self.scores[i]), provenance)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Candidates({list(self)!r})"

    def channel_names(self, i: int) -> list[str]:
        """Names of the channels that produced candidate ``i``, sorted."""
        return sorted(self.channels[c] for c in self.entry_channel[self.entry_pos == i])

    def take(self, positions: np.ndarray) -> Candidates:
        """The candidates at ``positions`` (in that order)."""
        positions = np.asarray(positions, np.int64)
        new = np.full(len(self), -1, np.int64)
        new[positions] = np.arange(len(positions))
        moved = new[self.entry_pos]
        keep = moved >= 0
        return Candidates([self.ids[p] for p in positions.tolist()], self.scores[positions], self.channels,
                          moved[keep], self.entry_channel[keep], self.entry_rank[keep],
                          self.entry_score[keep])  # fmt: skip


def fuse(
    results: dict[str, RecallList],
    weights: dict[str, float],
    k: int,
    exclude: set[str] | frozenset[str] = frozenset(),
    *,
    method: Method = "reciprocal_rank",
    rank_offset: float = 1.0,
) -> Candidates:
    """Weighted sum of normalized channel scores per item, best ``k`` first (ties by item id).

    A channel missing from ``weights`` weighs 1. Excluded items and repeats within a channel
    are dropped before ranks are assigned, so rank 0 is a channel's best admissible item.
    """
    if method not in ("reciprocal_rank", "minmax"):
        raise InvalidInput(f"recall: unknown fusion method {method!r}")
    # the serving hot path (~1,500 entries per request): item ids are interned to integers in
    # one pass per list, everything after that is numpy
    index: dict[str, int] = {}
    intern = index.setdefault
    channels = list(results)
    parts: list[tuple[list[int], np.ndarray, int, np.ndarray]] = []
    for c, (channel, items) in enumerate(results.items()):
        kept = _first_occurrences(items, exclude)
        if not kept:
            continue
        ids = [intern(item, len(index)) for item, _ in kept]
        raw = np.fromiter((score for _, score in kept), np.float64, len(kept))
        weight = weights.get(channel, 1.0)
        if method == "reciprocal_rank":
            contribution = weight * (1.0 / (np.arange(len(kept)) + rank_offset))
        else:
            contribution = weight * np.asarray(normalize(kept, method, rank_offset))
        parts.append((ids, raw, c, contribution))
    n = len(index)
    if not parts or k <= 0:
        empty = np.zeros(0, np.int64)
        return Candidates([], np.zeros(0), channels, empty, empty, empty, np.zeros(0))
    entry_item = np.fromiter(itertools.chain.from_iterable(p[0] for p in parts), np.int64)
    # bincount adds each item's contributions in channel order, as a running sum would
    fused = np.bincount(entry_item, weights=np.concatenate([p[3] for p in parts]), minlength=n)
    names = list(index)
    by_id = np.empty(n, np.int64)
    by_id[sorted(range(n), key=names.__getitem__)] = np.arange(n)
    top = np.lexsort((by_id, -fused))[:k]
    position = np.full(n, -1, np.int64)
    position[top] = np.arange(len(top))
    entry_pos = position[entry_item]
    keep = entry_pos >= 0
    entry_channel = np.concatenate([np.full(len(p[0]), p[2], np.int64) for p in parts])
    entry_rank = np.concatenate([np.arange(len(p[0]), dtype=np.int64) for p in parts])
    entry_score = np.concatenate([p[1] for p in parts])
    return Candidates([names[i] for i in top.tolist()], fused[top], channels, entry_pos[keep],
                      entry_channel[keep], entry_rank[keep], entry_score[keep])  # fmt: skip


def _first_occurrences(items: RecallList, exclude: set[str] | frozenset[str]) -> RecallList:
    """``items`` without excluded ids and without later repeats of an id, order kept."""
    seen: set[str] = set()
    kept: RecallList = []
    for pair in items:
        item = pair[0]
        if item not in seen and item not in exclude:
            seen.add(item)
            kept.append(pair)
    return kept


def feature_names(channels: list[str]) -> list[str]:
    return [f"recall_{c}_{kind}" for c in channels for kind in ("rr", "hit")] + [
        "recall_fused_score",
        "recall_channel_count",
    ]


def candidate_features(candidates: Sequence[Candidate], channels: list[str]) -> tuple[list[str], np.ndarray]:
    """Per channel: reciprocal rank 1/(rank+1) (0 if absent) and a 0/1 indicator; then the fused
    score and how many channels produced the candidate. One row per candidate, float32."""
    names = feature_names(channels)
    out = np.zeros((len(candidates), len(names)), np.float32)
    if not len(candidates):
        return names, out
    col = {c: 2 * n for n, c in enumerate(channels)}
    if isinstance(candidates, Candidates):
        # a channel of the fusion that is not a configured one gets no column, but still counts
        where = np.array([col.get(c, -1) for c in candidates.channels], np.int64)[candidates.entry_channel]
        ok = where >= 0
        r, c, rank = candidates.entry_pos[ok], where[ok], candidates.entry_rank[ok]
        out[:, -2] = candidates.scores
        out[:, -1] = np.bincount(candidates.entry_pos, minlength=len(candidates))
    else:
        rows: list[int] = []
        cols: list[int] = []
        ranks: list[int] = []
        for row, cand in enumerate(candidates):  # collected first: numpy scalar writes are slow
            for channel, (position, _) in cand.channels.items():
                column = col.get(channel)
                if column is not None:
                    rows.append(row)
                    cols.append(column)
                    ranks.append(position)
        r, c, rank = np.asarray(rows, np.int64), np.asarray(cols, np.int64), np.asarray(ranks, np.int64)
        out[:, -2] = [cand.score for cand in candidates]
        out[:, -1] = [len(cand.channels) for cand in candidates]
    out[r, c] = 1.0 / (rank.astype(np.float32) + 1)
    out[r, c + 1] = 1.0
    return names, out
