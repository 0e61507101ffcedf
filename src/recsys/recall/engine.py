"""RecallEngine: the configured channels, fitted, saved and queried together."""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path

import numpy as np

from recsys.errors import InvalidInput
from recsys.recall.base import RecallChannel, RecallContext
from recsys.recall.config import RecallConfig, config_from_dict
from recsys.recall.data import RecallData
from recsys.recall.filtering import ExclusionFilter
from recsys.recall.fusion import Candidate, Candidates, candidate_features, fuse_hits
from recsys.recall.lists import NO_HITS, Hits, ItemVocab, RecallList
from recsys.recall.registry import CHANNELS

log = logging.getLogger(__name__)
_NONE = Candidates([], np.zeros(0), [], np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                   np.zeros(0))  # fmt: skip
ENGINE_FILE = "engine.json"


class RecallEngine:
    """Channels in config order; ``recall`` runs them (sequentially) and fuses their lists.

    All channels answer in one item vocabulary (``self.vocab``, shared after every fit and
    load), so that their answers are integer arrays fusion can add up without a string in sight.
    """

    def __init__(
        self,
        config: RecallConfig,
        channels: list[RecallChannel] | None = None,
        exclusion: ExclusionFilter | None = None,
    ) -> None:
        self.config = config
        self.channels = (
            channels
            if channels is not None
            else [CHANNELS[c.type](c.name, c.parsed_params()) for c in config.active]
        )
        self.exclusion = exclusion or ExclusionFilter()
        self.weights = {c.name: c.weight for c in config.active}
        self.k = {c.name: c.k for c in config.active}
        self.fit_seconds: dict[str, float] = {}
        self._share_vocab()

    def _share_vocab(self) -> None:
        """One vocabulary for all channels, and the inactive items as a mask over it."""
        self.vocab = ItemVocab.union(a for c in self.channels for a in c.item_arrays())
        for channel in self.channels:
            channel.use_vocab(self.vocab)
        self._inactive = np.zeros(len(self.vocab), bool)
        self._inactive[self.vocab.lookup(self.exclusion.inactive)] = True

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.channels]

    def channel(self, name: str) -> RecallChannel:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(name)

    def fit_all(self, data: RecallData, reuse: RecallEngine | None = None) -> dict[str, float]:
        """Fit every channel; returns seconds per channel (also in each channel's stats).

        ``reuse``: an engine fitted before, whose channels that learn from the items table alone
        (``items_only``) are copied instead of refitted when they were fitted on the same items
        with the same parameters (the train step fits three engines on one catalogue)."""
        self.exclusion = ExclusionFilter.from_data(data, exclude_inactive=self.config.filter.exclude_inactive)
        for n, channel in enumerate(self.channels):
            start = time.perf_counter()
            done = self._reusable(channel, reuse, data)
            if done is not None:
                self.channels[n] = channel = done
            else:
                channel.fit(data)
            self.fit_seconds[channel.name] = round(time.perf_counter() - start, 3)
            channel.stats["fit_seconds"] = self.fit_seconds[channel.name]
            log.info(
                "recall: fitted %s in %.2fs (%s)",
                channel.name,
                self.fit_seconds[channel.name],
                "enabled" if channel.enabled else f"disabled: {channel.disabled_reason}",
            )
        self._share_vocab()
        return dict(self.fit_seconds)

    @staticmethod
    def _reusable(
        channel: RecallChannel, reuse: RecallEngine | None, data: RecallData
    ) -> RecallChannel | None:
        if not channel.items_only or reuse is None or channel.name not in reuse.names:
            return None
        other = reuse.channel(channel.name)
        same = type(other) is type(channel) and other.params == channel.params
        return copy.deepcopy(other) if same and other.fitted_on == data.items_key else None

    def recall_hits(
        self, user_id: str, ctx: RecallContext, k_per_channel: dict[str, int] | int | None = None
    ) -> dict[str, Hits]:
        """Each enabled channel's answer as arrays over ``self.vocab``, none in ``ctx.exclude`` (the
        caller's: the user's seen items and the request's exclusions) and none inactive."""
        out: dict[str, Hits] = {}
        for channel in self.channels:
            if not channel.enabled:
                continue
            if isinstance(k_per_channel, int):
                k = k_per_channel
            else:
                k = (k_per_channel or {}).get(channel.name, self.k[channel.name])
            out[channel.name] = self.drop_inactive(channel.recall_hits(user_id, ctx, k))
        return out

    def drop_inactive(self, hits: Hits) -> Hits:
        idx, scores = hits
        if not len(idx):
            return NO_HITS
        keep = ~self._inactive[idx]
        return (idx, scores) if keep.all() else (idx[keep], scores[keep])

    def recall_channels(
        self, user_id: str, ctx: RecallContext, k_per_channel: dict[str, int] | int | None = None
    ) -> dict[str, RecallList]:
        """Each enabled channel's list, filtered like ``recall_hits``."""
        hits = self.recall_hits(user_id, ctx, k_per_channel)
        return {name: self.vocab.to_list(*h) for name, h in hits.items()}

    def fuse(
        self, hits: dict[str, Hits], k: int, ctx: RecallContext, weights: dict[str, float] | None = None
    ) -> Candidates:
        """The channels' ``hits`` fused with the configured method (and ``weights``, by default
        the configured ones), best ``k`` first, none in ``ctx.exclude`` (the positions the
        channels already looked up for it, when they ran with this ``ctx``)."""
        fusion = self.config.fusion
        return fuse_hits(hits, self.vocab, self.weights if weights is None else weights, k,
                         ctx.excluded(self.vocab), method=fusion.method,
                         rank_offset=fusion.rank_offset)  # fmt: skip

    def recall(
        self,
        user_id: str,
        ctx: RecallContext,
        k_per_channel: dict[str, int] | int | None = None,
        k: int | None = None,
    ) -> list[Candidate]:
        hits = self.recall_hits(user_id, ctx, k_per_channel)
        return self.fuse(hits, self.config.fusion.k if k is None else k, ctx)

    def candidate_features(self, candidates: Candidates) -> tuple[list[str], np.ndarray]:
        """Ranker features of ``candidates``: a column pair per configured channel (disabled
        channels included, all zero, so the column set does not depend on the data)."""
        return candidate_features(candidates if len(candidates) else _NONE, self.names)

    def to_lists(self) -> dict[str, dict[str, RecallList]]:
        """channel -> key -> list, the shape of ``StoreSnapshot.recall``."""
        return {c.name: c.to_lists() for c in self.channels if c.enabled}

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for channel in self.channels:
            channel.save(directory / "channels" / channel.name)
        self.exclusion.save(directory / "filter")
        meta = {
            "format": 1,
            "config": self.config.model_dump(mode="json"),
            "fit_seconds": self.fit_seconds,
            "channels": {
                c.name: {"enabled": c.enabled, "disabled_reason": c.disabled_reason, "stats": c.stats}
                for c in self.channels
            },
        }
        (directory / ENGINE_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))

    @classmethod
    def load(cls, directory: Path, config: RecallConfig | None = None) -> RecallEngine:
        """Restore a saved engine; ``config`` (default: the saved one) sets weights, k and fusion,
        and must name the same channels with the same types."""
        directory = Path(directory)
        path = directory / ENGINE_FILE
        if not path.exists():
            raise InvalidInput(f"recall: {path} is missing")
        meta = json.loads(path.read_text())
        saved = config_from_dict(meta["config"], source=str(path))
        config = config or saved
        saved_types = {c.name: c.type for c in saved.active}
        channels = []
        for c in config.active:
            if saved_types.get(c.name) != c.type:
                raise InvalidInput(f"recall: {directory} has no fitted {c.type!r} channel named {c.name!r}")
            channels.append(CHANNELS[c.type].load(directory / "channels" / c.name, c.parsed_params()))
        engine = cls(config, channels, ExclusionFilter.load(directory / "filter"))
        engine.fit_seconds = dict(meta.get("fit_seconds", {}))
        return engine
