"""Fusing the channels' lists into one candidate set, and the ranker's per-channel features.

Raw channel scores are not comparable (a co-occurrence weight, a cosine, a popularity mass),
so each list is normalized first: by rank (``1 / (rank + offset)``, the default, robust to
score scales) or by min-max within the list. A candidate keeps which channels produced it and
at what rank, which the ranker uses as features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple, overload

import numpy as np

from recsys.errors import InvalidInput
from recsys.recall.lists import Hits, ItemVocab, RecallList, member

Method = Literal["reciprocal_rank", "minmax"]


class Candidate(NamedTuple):
    item_id: str
    score: float  # fused
    channels: dict[str, tuple[int, float]]  # channel -> (rank from 0, raw channel score)


class Candidates(Sequence[Candidate]):
    """``fuse``'s result: fused candidates best first, held as arrays.

    Reads like a list of ``Candidate`` (each one built on access); ``candidate_features`` and
    ``channel_names`` read the arrays directly, which is what keeps the serving hot path cheap.
    Provenance is one entry per (candidate, channel): ``entry_pos`` (candidate position),
    ``entry_channel`` (index into ``channels``), ``entry_rank`` and ``entry_score``.
    """

    __slots__ = ("ids", "scores", "channels", "entry_pos", "entry_channel", "entry_rank", "entry_score",
                 "channel_best")  # fmt: skip

    def __init__(
        self,
        ids: list[str],
        scores: np.ndarray,
        channels: list[str],
        entry_pos: np.ndarray,
        entry_channel: np.ndarray,
        entry_rank: np.ndarray,
        entry_score: np.ndarray,
        channel_best: np.ndarray | None = None,
    ) -> None:
        self.ids, self.scores, self.channels = ids, scores, channels
        self.entry_pos, self.entry_channel = entry_pos, entry_channel
        self.entry_rank, self.entry_score = entry_rank, entry_score
        # each channel's best admissible raw score, before fusion cut the list (0: no entry)
        self.channel_best = channel_best if channel_best is not None else np.zeros(len(channels))

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
        return self.channel_lists([i])[0]

    def channel_lists(self, positions: Sequence[int]) -> list[list[str]]:
        """``channel_names`` of each of the distinct ``positions``, in a fixed number of array
        calls (the answer's ``channels`` output: one mask per item cost more than the rest of
        building the answer)."""
        slot = np.full(len(self), -1, np.int64)
        slot[np.asarray(positions, np.int64)] = np.arange(len(positions))
        owner = slot[self.entry_pos]
        rows = np.flatnonzero(owner >= 0)
        names: list[list[str]] = [[] for _ in positions]
        for o, c in zip(owner[rows].tolist(), self.entry_channel[rows].tolist(), strict=True):
            names[o].append(self.channels[c])
        return [sorted(n) for n in names]

    def take(self, positions: np.ndarray) -> Candidates:
        """The candidates at ``positions`` (in that order)."""
        positions = np.asarray(positions, np.int64)
        new = np.full(len(self), -1, np.int64)
        new[positions] = np.arange(len(positions))
        moved = new[self.entry_pos]
        keep = moved >= 0
        return Candidates([self.ids[p] for p in positions.tolist()], self.scores[positions], self.channels,
                          moved[keep], self.entry_channel[keep], self.entry_rank[keep],
                          self.entry_score[keep], self.channel_best)  # fmt: skip


def fuse(
    results: dict[str, RecallList],
    weights: dict[str, float],
    k: int,
    exclude: set[str] | frozenset[str] = frozenset(),
    *,
    method: Method = "reciprocal_rank",
    rank_offset: float = 1.0,
) -> Candidates:
    """``fuse_hits`` for lists of (item id, score), over a vocabulary of their own items."""
    vocab = ItemVocab(sorted({item for items in results.values() for item, _ in items}))
    hits = {
        channel: (
            vocab.positions(np.array([item for item, _ in items], dtype=object)),
            np.array([score for _, score in items], np.float64),
        )
        for channel, items in results.items()
    }
    return fuse_hits(hits, vocab, weights, k, vocab.lookup(exclude), method=method, rank_offset=rank_offset)


def fuse_hits(
    hits: dict[str, Hits],
    vocab: ItemVocab,
    weights: dict[str, float],
    k: int,
    exclude: np.ndarray | None = None,
    *,
    method: Method = "reciprocal_rank",
    rank_offset: float = 1.0,
) -> Candidates:
    """Weighted sum of normalized channel scores per item, best ``k`` first (ties by item id).

    ``hits``: each channel's (positions in ``vocab``, raw scores), best first; ``exclude``:
    sorted positions. A channel missing from ``weights`` weighs 1. Excluded items and repeats
    within a channel are dropped before ranks are assigned, so rank 0 is a channel's best
    admissible item. All array work: the serving hot path fuses ~1,500 entries per request.
    """
    if method not in ("reciprocal_rank", "minmax"):
        raise InvalidInput(f"recall: unknown fusion method {method!r}")
    channels = list(hits)
    # every channel's entries in one array set, then a fixed number of array calls: per-channel
    # calls would cost more than the work on ~1,500 entries
    sizes = [len(idx) for idx, _ in hits.values()]
    entry_channel = np.repeat(np.arange(len(channels), dtype=np.int64), sizes)
    entry_item = np.concatenate([np.asarray(i, np.int64) for i, _ in hits.values()]) if hits else _EMPTY_INT
    entry_score = np.concatenate([np.asarray(s, np.float64) for _, s in hits.values()]) if hits else _EMPTY
    keep = _admissible(entry_channel, entry_item, len(vocab), exclude)
    if keep is not None:
        entry_channel, entry_item, entry_score = entry_channel[keep], entry_item[keep], entry_score[keep]
    if not len(entry_item) or k <= 0:
        return Candidates([], _EMPTY, channels, _EMPTY_INT, _EMPTY_INT, _EMPTY_INT, _EMPTY)
    # entries stay grouped by channel in channel order: a channel's rank is its offset in its group
    start = np.searchsorted(entry_channel, np.arange(len(channels)))
    has = start < len(entry_channel)
    best = np.zeros(len(channels))
    best[has] = entry_score[start[has]]
    best[has & (np.append(start[1:], len(entry_channel)) <= start)] = 0.0  # an empty group
    entry_rank = np.arange(len(entry_item)) - start[entry_channel]
    weight = np.array([weights.get(c, 1.0) for c in channels])
    contribution = weight[entry_channel] * _normalized(entry_score, entry_rank, entry_channel, start, method,
                                                       rank_offset)  # fmt: skip
    # bincount adds each item's contributions in channel order, as a running sum would
    items, inverse = np.unique(entry_item, return_inverse=True)
    fused = np.bincount(inverse, weights=contribution, minlength=len(items))
    top = np.lexsort((items, -fused))[:k]  # positions follow item ids: ties by id
    position = np.full(len(items), -1, np.int64)
    position[top] = np.arange(len(top))
    entry_pos = position[inverse]
    kept = entry_pos >= 0
    ids = [str(i) for i in vocab.ids[items[top]].tolist()]
    return Candidates(ids, fused[top], channels, entry_pos[kept], entry_channel[kept], entry_rank[kept],
                      entry_score[kept], best)  # fmt: skip


_EMPTY_INT = np.zeros(0, np.int64)
_EMPTY = np.zeros(0)


def _admissible(
    channel: np.ndarray, item: np.ndarray, n_items: int, exclude: np.ndarray | None
) -> np.ndarray | None:
    """Which entries to keep: not excluded, and not a later repeat of an item in its channel
    (None: all of them)."""
    keep = ~member(item, exclude) if exclude is not None and len(exclude) else None
    _, first = np.unique(channel * max(n_items, 1) + item, return_index=True)
    if len(first) < len(item):
        once = np.zeros(len(item), bool)
        once[first] = True
        keep = once if keep is None else keep & once
    return keep


def _normalized(
    score: np.ndarray, rank: np.ndarray, channel: np.ndarray, start: np.ndarray, method: Method, offset: float
) -> np.ndarray:
    """Each entry's contribution in [0, 1] before weighting, every channel's group at once: by
    rank (``1 / (rank + offset)``) or by min-max of the scores within the channel."""
    if method == "reciprocal_rank":
        return 1.0 / (rank + offset)
    present = np.unique(channel)
    lo = np.minimum.reduceat(score, start[present])[np.searchsorted(present, channel)]
    hi = np.maximum.reduceat(score, start[present])[np.searchsorted(present, channel)]
    span = hi - lo
    # a list of equal scores carries no order information: every entry counts fully
    return np.where(span > 0, (score - lo) / np.where(span > 0, span, 1.0), 1.0)


PER_CHANNEL = ("rr", "hit", "rel")


def feature_names(channels: list[str]) -> list[str]:
    return [f"recall_{c}_{kind}" for c in channels for kind in PER_CHANNEL] + [
        "recall_fused_score",
        "recall_channel_count",
    ]


def _relative(channel: np.ndarray, score: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Each entry's raw score over its channel's best score for the request (0 when that best is
    not positive): how close to the channel's top pick, whatever the channel's scale."""
    top = best[channel]
    return np.where(top > 0, score / np.where(top > 0, top, 1.0), 0.0)


def candidate_features(candidates: Candidates, channels: list[str]) -> tuple[list[str], np.ndarray]:
    """Per channel: reciprocal rank 1/(rank+1) (0 if absent), a 0/1 indicator and the raw score
    relative to the channel's best for the request; then the fused score and how many channels
    produced the candidate. One row per candidate, float32."""
    names = feature_names(channels)
    width = len(PER_CHANNEL)
    out = np.zeros((len(candidates), len(names)), np.float32)
    if not len(candidates):
        return names, out
    col = {c: width * n for n, c in enumerate(channels)}
    # a channel of the fusion that is not a configured one gets no column, but still counts
    where = np.array([col.get(c, -1) for c in candidates.channels], np.int64)[candidates.entry_channel]
    ok = where >= 0
    r, c, rank = candidates.entry_pos[ok], where[ok], candidates.entry_rank[ok]
    # the fusion's channel order may differ from ``channels``: the best scores follow ``col``
    best = np.zeros(len(channels))
    for n, name in enumerate(candidates.channels):
        if name in col:
            best[col[name] // width] = candidates.channel_best[n]
    out[r, c] = 1.0 / (rank.astype(np.float32) + 1)
    out[r, c + 1] = 1.0
    out[r, c + 2] = _relative(c // width, candidates.entry_score[ok], best)
    out[:, -2] = candidates.scores
    out[:, -1] = np.bincount(candidates.entry_pos, minlength=len(candidates))
    return names, out
