"""Content channels: TF-IDF item-item similarity (content) and shared tags (tag)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.feature_extraction.text import TfidfVectorizer

from recsys.recall.base import (
    NO_HITS,
    ChannelParams,
    HistoryParams,
    Hits,
    NeighbourChannel,
    RecallChannel,
    RecallContext,
    history_weights,
    lists_from_entries,
)
from recsys.recall.data import RecallData
from recsys.recall.lists import RankedLists, accumulate, sparse_topn, top_k


def item_text(items: pd.DataFrame) -> pd.Series:
    tags = items["tags"].fillna("").astype(str).str.replace("|", " ", regex=False)
    parts = [items["title"].fillna("").astype(str), items["description"].fillna("").astype(str), tags]
    return (parts[0] + " " + parts[1] + " " + parts[2]).str.strip()


class ContentParams(HistoryParams):
    min_interactions: int = Field(0, ge=0)
    neighbours: int = Field(50, ge=1, description="neighbours kept per item")
    max_features: int = Field(50_000, ge=1, description="TF-IDF vocabulary size")
    stop_words: str | None = Field("english", description="sklearn stop-word list, or null")
    min_similarity: float = Field(0.0, ge=0, lt=1, description="weaker neighbours are dropped")


class Content(NeighbourChannel):
    """Cosine between TF-IDF vectors of title + description + tags; works for items nobody saw."""

    type = "content"
    Params: ClassVar[type[ChannelParams]] = ContentParams
    items_only = True

    def _fit(self, data: RecallData) -> str | None:
        p: ContentParams = self.params  # type: ignore[assignment]
        text = item_text(data.items)
        if int((text != "").sum()) < 2:
            return "fewer than 2 items have a title, description or tags"
        vectorizer = TfidfVectorizer(max_features=p.max_features, stop_words=p.stop_words, sublinear_tf=True)
        try:
            x = vectorizer.fit_transform(text.tolist()).tocsr()  # rows are L2-normalized
        except ValueError as e:  # every document empty after tokenizing and stop words
            return f"no TF-IDF terms: {e}"
        rows, cols, scores = sparse_topn(
            x,
            x.T.tocsr(),
            p.neighbours,
            skip_diagonal=True,
            col_mask=data.active_mask,
            min_score=p.min_similarity,
        )
        if not len(rows):
            return "no two items share a term"
        self.lists = lists_from_entries(data.item_vocab, data.item_vocab, rows, cols, scores)
        self.stats.update(terms=len(vectorizer.vocabulary_), pairs=len(rows))
        return None


class TagParams(HistoryParams):
    top_tags: int = Field(5, ge=1, description="the user's most frequent history tags used")


def split_tags(value: Any) -> list[str]:
    if not isinstance(value, str):
        return []
    return list(dict.fromkeys(t.strip().lower() for t in value.split("|") if t.strip()))


class Tag(RecallChannel):
    """score(j) = overlap(j) x pop(j), over the user's ``top_tags`` most frequent history tags.

    ``overlap(j)`` is the share of the user's top-tag mass (recency-weighted tag counts) that j
    carries; lists are tag -> items with that tag by decayed popularity.
    """

    type = "tag"
    Params: ClassVar[type[ChannelParams]] = TagParams

    def __init__(self, name: str | None = None, params: Any = None) -> None:
        super().__init__(name, params)
        self.item_tags: dict[str, list[str]] = {}

    def _fit(self, data: RecallData) -> str | None:
        p: TagParams = self.params  # type: ignore[assignment]
        tags = data.items["tags"].map(split_tags)
        self.item_tags = {i: t for i, t in zip(data.items["item_id"], tags, strict=True) if t}
        if not self.item_tags:
            return "no item has tags"
        pop = data.popularity(p.half_life_days)
        pairs = pd.DataFrame({"row": np.arange(len(tags)), "tag": tags}).explode("tag").dropna()
        rows = pairs["row"].to_numpy(np.int64)
        keep = (pop[rows] > 0) & data.active_mask[rows]
        pairs = pairs[keep]
        if pairs.empty:
            return "no active tagged item has an interaction"
        keys, key_rows = np.unique(pairs["tag"].to_numpy(dtype=object), return_inverse=True)
        cols = pairs["row"].to_numpy(np.int64)
        self.lists = RankedLists.from_entries(
            data.item_vocab, [str(k) for k in keys], key_rows, cols, pop[cols], limit=p.list_size
        )
        self.stats.update(tags=len(keys), tagged_items=len(self.item_tags))
        return None

    def _recall(self, user_id: str, ctx: RecallContext, k: int) -> Hits:
        p: TagParams = self.params  # type: ignore[assignment]
        counts: Counter[str] = Counter()
        for item, w in history_weights(ctx.history, p):
            for tag in self.item_tags.get(item, []):
                counts[tag] += w
        # equally frequent tags are taken in alphabetical order, so the choice is deterministic
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: p.top_tags]
        total = sum(c for _, c in top)
        if not total:
            return NO_HITS
        # overlap(j) x pop(j) = sum over the shared tags of (tag share x pop(j)): one pass per list
        parts = []
        for tag, c in top:
            idx, sc = self.lists.get(tag)
            parts.append((idx, sc.astype(np.float64) * (c / total)))
        idx, score = accumulate(parts)
        return top_k(idx, score, k, ctx.excluded(self.vocab))

    def _save_arrays(self, directory: Path) -> None:
        items = [i for i, t in self.item_tags.items() for _ in t]
        pd.DataFrame({"item_id": items, "tag": [t for ts in self.item_tags.values() for t in ts]}).to_parquet(
            directory / "item_tags.parquet", index=False
        )

    def _load_arrays(self, directory: Path) -> None:
        frame = pd.read_parquet(directory / "item_tags.parquet")
        self.item_tags = {}
        for item, tag in zip(frame["item_id"], frame["tag"], strict=True):
            self.item_tags.setdefault(item, []).append(tag)
