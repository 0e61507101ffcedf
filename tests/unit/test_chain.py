"""The library's ranking chain: one input definition and schema hash, diversity and top k."""

from __future__ import annotations

import numpy as np

from recsys.chain.chain import RankingChain, input_columns, input_schema_hash
from recsys.chain.config import ChainConfig
from recsys.features.registry import load_registry
from recsys.recall.config import config_from_dict
from recsys.recall.engine import RecallEngine
from recsys.settings import SOURCE_CONFIG_DIR

REGISTRY = load_registry(SOURCE_CONFIG_DIR / "features.yaml")


def engine(*types: str) -> RecallEngine:
    return RecallEngine(config_from_dict({"channels": [{"type": t} for t in types]}))


def test_the_schema_hash_covers_the_whole_input_in_order() -> None:
    a, b, c = engine("itemcf", "tag"), engine("itemcf", "popular"), engine("tag", "itemcf")
    cols = {name: input_columns(REGISTRY, e) for name, e in (("a", a), ("b", b), ("c", c))}
    assert cols["a"][: len(REGISTRY.ranker_columns)] == REGISTRY.ranker_columns
    assert len(cols["a"]) == len(cols["b"]) == len(cols["c"])  # same width ...
    hashes = {input_schema_hash(REGISTRY, v) for v in cols.values()}
    assert len(hashes) == 3  # ... but another channel set or order is another schema
    assert input_schema_hash(REGISTRY, cols["a"]) == RankingChain(a, REGISTRY, ChainConfig()).schema_hash
    assert "position" not in cols["a"]  # nothing says how a training row was made


def test_order_is_best_first_with_an_optional_category_cap() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    cats = np.array([1.0, 1.0, 1.0, 2.0, 1.0, 3.0])
    free = RankingChain(engine("itemcf"), REGISTRY, ChainConfig())
    assert free.order(scores, cats, 4) == [0, 1, 2, 3]
    capped = RankingChain(engine("itemcf"), REGISTRY, ChainConfig(category_cap=2))
    assert capped.order(scores, cats, 4) == [0, 1, 3, 5]
    assert capped.order(scores, cats, 6) == [0, 1, 3, 5, 2, 4]  # capped ones fill a short list
    ties = np.array([0.5, 0.5, 0.5])
    assert free.order(ties, np.zeros(3), 3) == [0, 1, 2]  # ties keep the fused order
