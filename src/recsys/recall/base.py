"""The recall interface: what channels see online (RecallContext) and their base class.

A channel keeps what it learned as ranked lists (``self.lists``: key -> [(item, score)]), the
same lists the online store publishes, so its ``recall`` is a small computation over those
lists plus a few per-item attributes. ``save``/``load`` write the lists as Parquet and the
rest as JSON/NumPy; nothing is pickled.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsys.errors import ConfigError, InvalidInput
from recsys.recall.data import RecallData
from recsys.recall.lists import NO_HITS, Hits, ItemVocab, RankedLists, RecallList, accumulate, top_k

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


@dataclass
class RecallContext:
    """What a channel sees online for one request."""

    history: list[str]  # recent positive items, newest first
    user_industry: str | None = None
    scene: str | None = None
    exclude: set[str] = field(default_factory=set)
    _excluded: tuple[ItemVocab, np.ndarray] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def excluded(self, vocab: ItemVocab) -> np.ndarray:
        """``exclude`` as sorted positions in ``vocab``, worked out once per request (channels
        running concurrently may both work it out: the same answer)."""
        cached = self._excluded
        if cached is None or cached[0] is not vocab:
            cached = self._excluded = (vocab, vocab.lookup(self.exclude))
        return cached[1]


class ChannelParams(BaseModel):
    """Parameters every channel accepts; subclasses add their own. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    min_interactions: int = Field(1, ge=0, description="fewer interactions disable the channel")
    half_life_days: float = Field(30.0, gt=0, description="an interaction this old counts half")
    list_size: int = Field(200, ge=1, description="entries kept per published list")


class HistoryParams(ChannelParams):
    max_history: int = Field(50, ge=1, description="history items used per request")
    history_decay: float = Field(0.9, gt=0, le=1, description="weight of the p-th newest item: decay**p")


def history_weights(history: list[str], params: HistoryParams) -> list[tuple[str, float]]:
    return [(item, params.history_decay**p) for p, item in enumerate(history[: params.max_history])]


def lists_from_entries(
    vocab: np.ndarray,
    key_ids: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    scores: np.ndarray,
    limit: int | None = None,
) -> RankedLists:
    """Lists keyed by ``key_ids[row]`` from (row, item column, score) entries."""
    used, rows = np.unique(rows, return_inverse=True)
    return RankedLists.from_entries(vocab, [str(k) for k in key_ids[used]], rows, cols, scores, limit)


class RecallChannel(ABC):
    """One recall channel. Too little data disables it with a logged reason; it never raises."""

    type: ClassVar[str]
    Params: ClassVar[type[ChannelParams]] = ChannelParams
    # fitted on the items table alone (not on interactions): a fit on the same items is reusable
    items_only: ClassVar[bool] = False

    def __init__(self, name: str | None = None, params: ChannelParams | dict[str, Any] | None = None) -> None:
        self.name = name or self.type
        self.params = self.parse_params(params, self.name)
        self.enabled = False
        self.disabled_reason: str | None = "not fitted"
        self.stats: dict[str, Any] = {}
        self.lists = RankedLists.empty()
        self.vocab = ItemVocab([])
        self.fitted_on: int | None = None

    @classmethod
    def parse_params(cls, params: ChannelParams | dict[str, Any] | None, name: str) -> ChannelParams:
        if isinstance(params, cls.Params):
            return params
        try:
            return cls.Params.model_validate(dict(params or {}))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "params"
            raise ConfigError(f"recall: channel {name!r}: params.{where}: {err['msg']}") from e

    def fit(self, data: RecallData) -> None:
        self.stats, self.lists = {}, RankedLists.empty()
        n = len(data.interactions)
        reason = (
            f"{n} interactions < min_interactions {self.params.min_interactions}"
            if n < self.params.min_interactions
            else self._fit(data)
        )
        if reason:
            self.enabled, self.disabled_reason, self.lists = False, reason, RankedLists.empty()
            log.warning("recall: channel %s disabled: %s", self.name, reason)
        else:
            self.enabled, self.disabled_reason = True, None
        self.stats["lists"] = len(self.lists)
        self.fitted_on = data.items_key if self.items_only else None
        self.use_vocab(ItemVocab.union(self.item_arrays()))

    @abstractmethod
    def _fit(self, data: RecallData) -> str | None:
        """Learn the lists; return a reason to disable the channel, or None."""

    def item_arrays(self) -> list[np.ndarray]:
        """Every array of item ids a recall answer can come from (for the shared vocabulary)."""
        return [self.lists.vocab]

    def use_vocab(self, vocab: ItemVocab) -> None:
        """Answer in ``vocab`` (a sorted superset of ``item_arrays``): the engine shares one."""
        self.lists = self.lists.with_vocab(vocab)
        self.vocab = vocab

    def recall(self, user_id: str, ctx: RecallContext, k: int) -> RecallList:
        """Up to ``k`` (item, score), descending score, none in ``ctx.exclude``."""
        return self.vocab.to_list(*self.recall_hits(user_id, ctx, k))

    def recall_hits(self, user_id: str, ctx: RecallContext, k: int) -> Hits:
        """``recall`` as arrays over ``self.vocab``: what serving and fusion use."""
        if not self.enabled or k <= 0:
            return NO_HITS
        return self._recall(user_id, ctx, k)

    @abstractmethod
    def _recall(self, user_id: str, ctx: RecallContext, k: int) -> Hits: ...

    def to_lists(self) -> dict[str, RecallList]:
        return self.lists.to_dict() if self.enabled else {}

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "type": self.type,
            "name": self.name,
            "params": self.params.model_dump(),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "stats": self.stats,
            "state": self._state(),
        }
        (directory / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        self.lists.save(directory / "lists.parquet")
        if self.enabled:
            self._save_arrays(directory)

    @classmethod
    def load(cls, directory: Path, params: ChannelParams | dict[str, Any] | None = None) -> RecallChannel:
        """Restore a saved channel. ``params`` (recall-time knobs) default to the saved ones."""
        path = directory / "meta.json"
        if not path.exists():
            raise InvalidInput(f"recall: {path} is missing")
        meta = json.loads(path.read_text())
        if meta.get("type") != cls.type or meta.get("format") != FORMAT_VERSION:
            raise InvalidInput(
                f"recall: {directory} holds a {meta.get('type')!r} channel "
                f"(format {meta.get('format')}), not {cls.type!r} (format {FORMAT_VERSION})"
            )
        channel = cls(meta["name"], meta["params"] if params is None else params)
        channel.enabled, channel.disabled_reason = meta["enabled"], meta["disabled_reason"]
        channel.stats = meta["stats"]
        channel.lists = RankedLists.load(directory / "lists.parquet")
        channel._restore(meta["state"])
        if channel.enabled:
            channel._load_arrays(directory)
        channel.use_vocab(ItemVocab.union(channel.item_arrays()))
        return channel

    # hooks for channels with more than lists; JSON-able state and array files
    def _state(self) -> dict[str, Any]:
        return {}

    def _restore(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        pass

    def _save_arrays(self, directory: Path) -> None:  # noqa: B027 - optional hook
        pass

    def _load_arrays(self, directory: Path) -> None:  # noqa: B027 - optional hook
        pass


def save_map(path: Path, mapping: dict[str, Any], value: str) -> None:
    pd.DataFrame({"key": list(mapping), value: list(mapping.values())}).to_parquet(path, index=False)


def load_map(path: Path, value: str) -> dict[str, Any]:
    if not path.exists():
        raise InvalidInput(f"recall: {path} is missing")
    frame = pd.read_parquet(path)
    return dict(zip(frame["key"].tolist(), frame[value].tolist(), strict=True))


class NeighbourChannel(RecallChannel):
    """Lists keyed by item; recall sums the lists of the history items, newer ones weighing more."""

    Params: ClassVar[type[ChannelParams]] = HistoryParams

    def _recall(self, user_id: str, ctx: RecallContext, k: int) -> Hits:
        parts = []
        for item, w in history_weights(ctx.history, self.params):  # type: ignore[arg-type]
            idx, sc = self.lists.get(item)
            parts.append((idx, sc.astype(np.float64) * w))
        idx, score = accumulate(parts)
        return top_k(idx, score, k, ctx.excluded(self.vocab))
