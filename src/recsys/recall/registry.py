"""Every recall channel type, by its config name. A new channel is one class plus one entry here."""

from __future__ import annotations

from recsys.recall.base import RecallChannel
from recsys.recall.cf import ItemCF, UserCF
from recsys.recall.content import Content, Tag
from recsys.recall.ease import Ease
from recsys.recall.embedding import Embedding
from recsys.recall.popularity import Industry, Popular, PriceBand

CHANNELS: dict[str, type[RecallChannel]] = {
    cls.type: cls for cls in (ItemCF, UserCF, Content, Tag, Industry, PriceBand, Popular, Embedding, Ease)
}
