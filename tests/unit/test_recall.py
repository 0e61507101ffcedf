"""Recall channels, fusion and the engine on tiny hand-checked data.

Unless a test says otherwise, every event is a click (weight 1) at AS_OF, so time decay is 1
and an interaction strength r_ui is 1. The main dataset:

    u1: a b c    u2: a b    u3: b c    u4: d e x      (x is inactive)

    popularity: a 2, b 3, c 2, d 1, e 1, x 1
"""

from __future__ import annotations

from datetime import datetime, timedelta
from math import log, sqrt
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest
import yaml

from recsys.errors import ConfigError, InvalidInput, RecsysError
from recsys.recall import (
    CHANNELS,
    RecallContext,
    RecallData,
    RecallEngine,
    build_index,
    candidate_features,
    config_from_dict,
    fuse,
    load_recall_config,
)
from recsys.recall.cf import ItemCF, UserCF
from recsys.recall.content import Content, Tag
from recsys.recall.ease import Ease
from recsys.recall.embedding import Embedding, EmbeddingParams, IndexDimensionMismatch
from recsys.recall.lists import ItemVocab, RankedLists, top_k
from recsys.recall.popularity import Industry, Popular, PriceBand

AS_OF = datetime(2026, 3, 10)
CONFIG = Path(__file__).resolve().parents[2] / "config" / "recall.yaml"
BASKETS = {"u1": "abc", "u2": "ab", "u3": "bc", "u4": "dex"}
ANY = {"min_interactions": 1}


def _items(**overrides: list) -> pd.DataFrame:
    base = {
        "item_id": list("abcdex"),
        "title": ["red shoe", "red shoe", "blue hat", "red hat", "wool scarf", "old thing"],
        "description": [None] * 6,
        "category": ["shoes", "shoes", "hats", "hats", "food", "shoes"],
        "industry": ["retail", "retail", "fashion", "fashion", "food", "retail"],
        "tags": ["red|run", "red", "blue|run", "wool", "red|wool", None],
        "price": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        "status": ["active"] * 5 + ["inactive"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def _events(baskets: dict[str, str], event_type: str = "click", age_days: float = 0.0) -> list[tuple]:
    ts = AS_OF - timedelta(days=age_days)
    return [(u, i, event_type, ts) for u, items in baskets.items() for i in items]


def _tables(events: list[tuple], items: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    ev = pd.DataFrame(events, columns=["user_id", "item_id", "event_type", "ts"])
    users = pd.DataFrame(
        {"user_id": ["u1", "u2", "u3", "u4"], "industry": ["fashion", None, None, None], "region": [None] * 4}
    )
    return {"events": ev, "items": _items() if items is None else items, "users": users}


def _data(events: list[tuple] | None = None, items: pd.DataFrame | None = None) -> RecallData:
    return RecallData.from_tables(_tables(_events(BASKETS) if events is None else events, items), AS_OF)


@pytest.fixture(scope="module")
def data() -> RecallData:
    return _data()


def _ctx(*history: str, exclude: set[str] | None = None, industry: str | None = None) -> RecallContext:
    return RecallContext(history=list(history), user_industry=industry, exclude=exclude or set())


def _approx(pairs: list[tuple[str, float]]) -> list:
    return [(i, pytest.approx(s, abs=1e-4)) for i, s in pairs]


def test_recall_data_weights_and_point_in_time() -> None:
    events = [
        ("u1", "a", "impression", AS_OF),
        ("u1", "a", "view", AS_OF),
        ("u1", "b", "purchase", AS_OF),
        ("u1", "c", "click", AS_OF + timedelta(hours=1)),
        ("u1", "zz", "click", AS_OF),
    ]
    d = _data(events)
    # impressions never count, the future click is not visible, unknown items are dropped
    assert sorted(zip(d.interactions["item_id"], d.interactions["weight"], strict=True)) == [
        ("a", 0.5),
        ("b", 4.0),
    ]
    assert d.histories() == {"u1": ["b"]}  # a view is not a positive
    with pytest.raises(ConfigError, match="impression"):
        RecallData.from_tables(_tables(events), AS_OF, weights={"impression": 1.0})


def test_itemcf_iuf_neighbours_and_history_recall(data: RecallData) -> None:
    ch = ItemCF(params=ANY)
    ch.fit(data)
    # iuf: u1, u4 = 1/ln 4 = 0.72135 (3 items); u2, u3 = 1/ln 3 = 0.91024; n_a 2, n_b 3, n_c 2
    # sim(a,b) = (0.72135 + 0.91024)/sqrt(2*3) = 0.66609 = sim(b,c); sim(a,c) = 0.72135/2 = 0.36067
    # sim(d,e) = 0.72135/1; x is inactive so it is never a neighbour
    iuf3, iuf2 = 1 / log(4), 1 / log(3)
    lists = ch.to_lists()
    assert lists["a"] == _approx([("b", (iuf3 + iuf2) / sqrt(6)), ("c", iuf3 / 2)])
    assert lists["b"] == _approx([("a", 0.66609), ("c", 0.66609)])  # tie -> item id order
    assert lists["d"] == _approx([("e", 0.72135)])
    assert "x" not in {i for ns in lists.values() for i, _ in ns}
    # history c (newest, weight 1), a (0.9): b = 0.66609 + 0.9*0.66609 = 1.26557,
    # a = 0.36067 (via c), c = 0.9*0.36067 = 0.32460
    assert ch.recall("u9", _ctx("c", "a"), 10) == _approx([("b", 1.26557), ("a", 0.36067), ("c", 0.32460)])
    assert ch.recall("u9", _ctx("c", "a", exclude={"a", "c"}), 10) == _approx([("b", 1.26557)])


def test_itemcf_time_decay() -> None:
    # u1: a b today; u2: a c 30 days ago, half-life 30 -> r = 0.5; iuf = 1/ln 3 = 0.91024 both
    # sim(a,b) = 0.91024*sqrt(1*1)/sqrt(1.5*1) = 0.74321; sim(a,c) = 0.91024*0.5/sqrt(1.5*0.5) = 0.52553
    d = _data(_events({"u1": "ab"}) + _events({"u2": "ac"}, age_days=30))
    ch = ItemCF(params={**ANY, "half_life_days": 30})
    ch.fit(d)
    assert ch.to_lists()["a"] == _approx([("b", 0.74321), ("c", 0.52553)])


def test_usercf(data: RecallData) -> None:
    ch = UserCF(params=ANY)
    ch.fit(data)
    # cos(u1,u2) = 2/(sqrt3 sqrt2) = 0.81650 = cos(u1,u3); cos(u2,u3) = 1/2; u4 shares nothing
    # u2 lacks only c: 0.81650 (u1) + 0.5 (u3); u3 lacks only a: likewise; u1 lacks nothing
    assert ch.recall("u2", _ctx(), 5) == _approx([("c", 1.31650)])
    assert ch.recall("u3", _ctx(), 5) == _approx([("a", 1.31650)])
    assert ch.recall("u1", _ctx(), 5) == [] and ch.recall("u4", _ctx(), 5) == []
    assert ch.recall("u2", _ctx(exclude={"c"}), 5) == []


def test_content_tfidf_neighbours_without_any_interaction() -> None:
    items = _items(
        item_id=list("abcd"),
        title=["red shoe", "red shoe", "blue hat", "red hat"],
        description=[None] * 4,
        category=["s"] * 4,
        industry=[None] * 4,
        tags=[None] * 4,
        price=[None] * 4,
        status=["active"] * 4,
    )
    ch = Content()
    ch.fit(_data([], items))
    # smooth idf ln(5/(1+df)) + 1: red 1.22314 (df 3), shoe 1.51083, hat 1.51083, blue 1.91629
    # |a|^2 = |d|^2 = 1.22314^2 + 1.51083^2 = 3.77867; |c|^2 = 1.91629^2 + 1.51083^2 = 5.95477
    # cos(a,b) = 1; cos(a,d) = 1.22314^2/3.77867 = 0.39593; cos(c,d) = 1.51083^2/sqrt(3.77867*5.95477)
    lists = ch.to_lists()
    assert lists["a"] == _approx([("b", 1.0), ("d", 0.39593)])
    assert lists["d"] == _approx([("c", 0.48120), ("a", 0.39593), ("b", 0.39593)])
    # history d (1), a (0.9): b = 0.39593 + 0.9; c = 0.48120; a = 0.39593 (via d); d = 0.9*0.39593
    assert ch.recall("u", _ctx("d", "a"), 4) == _approx(
        [("b", 1.29593), ("c", 0.48120), ("a", 0.39593), ("d", 0.35634)]
    )


def test_tag_overlap_times_popularity(data: RecallData) -> None:
    ch = Tag(params={**ANY, "top_tags": 2})
    ch.fit(data)
    # history a (1), c (0.9): run 1.9, red 1.0, blue 0.9 -> top 2 = run, red; mass 2.9
    # a: (1.9 + 1.0)/2.9 * pop 2 = 2; c: 1.9/2.9 * 2 = 1.31034; b: 1/2.9 * 3 = 1.03448; e: 1/2.9 * 1
    assert ch.to_lists()["red"] == _approx([("b", 3.0), ("a", 2.0), ("e", 1.0)])
    assert ch.recall("u", _ctx("a", "c"), 10) == _approx(
        [("a", 2.0), ("c", 1.31034), ("b", 1.03448), ("e", 0.34483)]
    )
    assert ch.recall("u", _ctx("a", "c", exclude={"a", "c"}), 1) == _approx([("b", 1.03448)])


def test_industry_own_and_history(data: RecallData) -> None:
    ch = Industry(params={**ANY, "own_weight": 0.5})
    ch.fit(data)
    assert ch.to_lists()["retail"] == _approx([("b", 3.0), ("a", 2.0)])  # x inactive
    # u1's own industry (users table) is fashion (+0.5), history a -> retail 1.0
    # b 3*1, a 2*1, c 2*0.5, d 1*0.5
    assert ch.recall("u1", _ctx("a"), 10) == _approx([("b", 3.0), ("a", 2.0), ("c", 1.0), ("d", 0.5)])
    # the request's industry wins over the table; no history -> just that industry
    assert ch.recall("u1", _ctx(industry="food"), 10) == _approx([("e", 0.5)])


def test_price_band(data: RecallData) -> None:
    ch = PriceBand(params={**ANY, "bands": 2, "min_priced_items": 2})
    ch.fit(data)
    # active prices 10..50 -> median edge 30: band 0 = a, b; band 1 = c, d, e
    assert ch.edges == [30.0]
    # history a (1, band 0), d (0.9, band 1): shares 1/1.9 = 0.52632, 0.9/1.9 = 0.47368
    assert ch.recall("u", _ctx("a", "d"), 10) == _approx(
        [("b", 3 * 0.52632), ("a", 2 * 0.52632), ("c", 2 * 0.47368), ("d", 0.47368), ("e", 0.47368)]
    )


def test_popular_global_and_category(data: RecallData) -> None:
    ch = Popular()
    ch.fit(data)
    assert ch.recall("u", _ctx(), 3) == _approx([("b", 3.0), ("a", 2.0), ("c", 2.0)])
    # history d (hats, share 1), boost 1: c 2*2, d 1*2, b 3, a 2, e 1
    assert ch.recall("u", _ctx("d", exclude={"d"}), 10) == _approx(
        [("c", 4.0), ("b", 3.0), ("a", 2.0), ("e", 1.0)]
    )
    assert set(ch.to_lists()) == {"global", "category:shoes", "category:hats", "category:food"}


EASE_ANY = {"min_interactions": 1, "min_item_interactions": 1, "l2": 1.0}


def test_ease_hand_checked(data: RecallData) -> None:
    ch = Ease(params=EASE_ANY)
    ch.fit(data)
    # a b c: G = X^T X = [[2,2,1],[2,3,2],[1,2,2]]; (G + I)^-1 = [[.5,-.25,0],[-.25,.5,-.25],[0,-.25,.5]]
    # B_ij = -P_ij / P_jj: B_ab = B_ba = B_bc = B_cb = 0.5, B_ac = B_ca = 0 (not positive: left out)
    # d e x: G + I = [[2,1,1],[1,2,1],[1,1,2]], P = [[3,-1,-1],...]/4: B_de = (1/4)/(3/4) = 1/3;
    # x is inactive, so it is in no list but keeps its own (a history item may be inactive)
    lists = ch.to_lists()
    assert lists == {
        "a": _approx([("b", 0.5)]),
        "b": _approx([("a", 0.5), ("c", 0.5)]),
        "c": _approx([("b", 0.5)]),
        "d": _approx([("e", 1 / 3)]),
        "e": _approx([("d", 1 / 3)]),
        "x": _approx([("d", 1 / 3), ("e", 1 / 3)]),
    }
    # x_u B with no history decay: history c, a -> b 0.5 + 0.5, nothing else is positive
    assert ch.recall("u9", _ctx("c", "a"), 10) == _approx([("b", 1.0)])
    # equal weights here tie up to float32 round-off, which then orders them: compare sorted
    got = ch.recall("u9", _ctx("a", "x", "b"), 10)
    assert sorted(got) == _approx([("a", 0.5), ("b", 0.5), ("c", 0.5), ("d", 1 / 3), ("e", 1 / 3)])
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


def test_ease_matches_numpy_on_weighted_data(tmp_path: Path) -> None:
    items = _items(item_id=list("abcd"), **{k: v[:4] for k, v in _items().drop(columns="item_id").items()})
    events = [
        ("u1", "a", "purchase", AS_OF), ("u1", "b", "click", AS_OF),
        ("u2", "a", "click", AS_OF), ("u2", "b", "click", AS_OF), ("u2", "c", "view", AS_OF),
        ("u3", "b", "click", AS_OF), ("u3", "c", "click", AS_OF), ("u3", "d", "click", AS_OF),
        ("u4", "a", "view", AS_OF), ("u4", "c", "click", AS_OF), ("u4", "d", "purchase", AS_OF),
        ("u5", "c", "click", AS_OF), ("u5", "d", "click", AS_OF),
    ]  # fmt: skip
    # strengths (purchase 4, click 1, view 0.5); rows u1..u5, columns a b c d
    x = np.array([[4, 1, 0, 0], [1, 1, 0.5, 0], [0, 1, 1, 1], [0.5, 0, 1, 4], [0, 0, 1, 1]])
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(4))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    ch = Ease(params={**EASE_ANY, "l2": 2.0, "neighbours": 2})
    ch.fit(_data(events, items))
    ids = np.array(list("abcd"))
    for i, item in enumerate(ids):
        positive = [j for j in np.argsort(-b[i], kind="stable") if b[i, j] > 0][:2]
        assert ch.to_lists().get(item, []) == _approx([(ids[j], b[i, j]) for j in positive])
    # recall = history row (binary) x the sparsified B: each list truncated to 2 entries
    sparse = np.where(b >= np.sort(b, axis=1)[:, [-2]], np.clip(b, 0, None), 0.0)
    scores = sparse[[3, 0]].sum(axis=0)  # history d, a
    want = [(ids[j], scores[j]) for j in np.lexsort((ids, -scores)) if scores[j] > 0]
    got = ch.recall("u9", _ctx("d", "a"), 10)
    assert got == _approx(want) and len(got) >= 2
    ch.save(tmp_path / "ease")
    loaded = Ease.load(tmp_path / "ease")
    assert loaded.enabled and loaded.stats == ch.stats and loaded.to_lists() == ch.to_lists()
    assert loaded.recall("u9", _ctx("d", "a"), 10) == got
    # users per item: c 4, then a b d 3 each; max_items 2 keeps c and (by id) a, which co-occur
    top = Ease(params={**EASE_ANY, "max_items": 2})
    top.fit(_data(events, items))
    assert top.stats["items"] == 2 and set(top.to_lists()) == {"a", "c"}
    few = Ease(params={**EASE_ANY, "min_item_interactions": 4})
    few.fit(_data(events, items))
    assert not few.enabled and "1 items have >= 4 interacting users" in few.disabled_reason  # c


def test_too_little_data_disables_with_reason(caplog: pytest.LogCaptureFixture) -> None:
    one = _data([("u1", "a", "click", AS_OF)], _items(price=[None] * 6))
    for ch, reason in [
        (ItemCF(params={"min_interactions": 5}), "1 interactions < min_interactions 5"),
        (ItemCF(params=ANY), "co-occur"),
        (PriceBand(params=ANY), "0 active items have a price"),
        (Embedding(params=ANY), "embedding dimensions"),
        (Ease(), "1 interactions < min_interactions 100"),
        (Ease(params=EASE_ANY), "1 items have >= 1 interacting users; EASE needs 2"),
    ]:
        ch.fit(one)
        assert not ch.enabled and reason in ch.disabled_reason
        assert ch.recall("u1", _ctx("a"), 10) == [] and ch.to_lists() == {}
        assert reason in caplog.text
    popular = Popular()
    popular.fit(one)  # the fallback runs on a single interaction
    assert popular.enabled and popular.recall("u2", _ctx(), 5) == [("a", 1.0)]
    with pytest.raises(ConfigError, match="min_interactions"):
        Popular(params={"min_interactions": 5})


BLOCKS = {"u1": "ab", "u2": "ab", "u3": "cd", "u4": "cd"}


def test_embedding_two_blocks_and_index_stats() -> None:
    items = _items(item_id=list("abcd"), **{k: v[:4] for k, v in _items().drop(columns="item_id").items()})
    d = _data(_events(BLOCKS), items)
    ch = Embedding(params=ANY)
    ch.fit(d)
    # X = ln 2 * two all-ones 2x2 blocks: rank 2 (zero singular values dropped), and with
    # alpha 0 the item vectors satisfy V V^T = projection onto (1,1,0,0)/sqrt2, (0,0,1,1)/sqrt2:
    # v_a.v_a = v_a.v_b = 0.5, v_a.v_c = 0
    assert ch.stats["dim"] == 2 and ch.stats["index"] == "IndexFlatIP"
    got = ch.recall("u", _ctx("a", exclude={"a"}), 3)
    assert got[0] == ("b", pytest.approx(0.5, abs=1e-5))
    assert [s for _, s in got[1:]] == [pytest.approx(0.0, abs=1e-5)] * 2
    assert ch.stats["recall_vs_exact"] == 1.0 and ch.stats["recall_vs_exact_k"] == 4
    assert ch.to_lists()["a"][0] == ("b", pytest.approx(0.5, abs=1e-5))
    hnsw = Embedding(params={**ANY, "flat_max_items": 2})
    hnsw.fit(d)
    assert hnsw.stats["index"] == "IndexHNSWFlat" and 0.0 <= hnsw.stats["recall_vs_exact"] <= 1.0


def test_faiss_dimension_mismatch_names_both() -> None:
    vectors = np.ones((5, 8), np.float32)
    with pytest.raises(IndexDimensionMismatch, match=r"dimension 16 .* dimension 8") as e:
        build_index(vectors, EmbeddingParams(), index=faiss.IndexFlatIP(16))
    assert isinstance(e.value, RecsysError)


def test_fuse_weights_dedup_exclusion_and_provenance() -> None:
    results = {"x": [("a", 5.0), ("b", 3.0), ("c", 1.0), ("a", 0.5)], "y": [("b", 0.9), ("d", 0.5)]}
    # x: a 1/1, b 1/2 (c excluded, the repeated a ignored); y (weight 2): b 2*1, d 2*1/2
    got = fuse(results, {"x": 1.0, "y": 2.0}, k=10, exclude={"c"})
    assert [(c.item_id, c.score) for c in got] == [("b", 2.5), ("a", 1.0), ("d", 1.0)]
    assert got[0].channels == {"x": (1, 3.0), "y": (0, 0.9)}
    assert [c.item_id for c in fuse(results, {"x": 1.0, "y": 2.0}, k=2)] == ["b", "a"]
    # excluding a moves b to rank 0 of x: b = 1 + 2
    assert fuse(results, {"x": 1.0, "y": 2.0}, k=1, exclude={"a"})[0].score == 3.0
    # min-max: x a 1, b 0.5, c 0; y b 1 (x2), d 0
    mm = fuse(results, {"x": 1.0, "y": 2.0}, k=10, method="minmax")
    assert [(c.item_id, c.score) for c in mm] == [("b", 2.5), ("a", 1.0), ("c", 0.0), ("d", 0.0)]
    names, matrix = candidate_features(got, ["x", "y", "z"])
    assert names == [
        "recall_x_rr",
        "recall_x_hit",
        "recall_x_rel",
        "recall_y_rr",
        "recall_y_hit",
        "recall_y_rel",
        "recall_z_rr",
        "recall_z_hit",
        "recall_z_rel",
        "recall_fused_score",
        "recall_channel_count",
    ]
    # rel: b's 3.0 over x's best admissible 5.0, y's 0.9 over its own best 0.9
    assert matrix[0].tolist() == pytest.approx([0.5, 1, 0.6, 1, 1, 1, 0, 0, 0, 2.5, 2])
    assert matrix[2].tolist() == pytest.approx([0, 0, 0, 0.5, 1, 0.5 / 0.9, 0, 0, 0, 1.0, 1])
    # with a cut to one candidate, rel still relates to the channel's best before the cut
    assert candidate_features(fuse(results, {"x": 1.0, "y": 2.0}, k=1, exclude={"c"}), ["x"])[1][0, 2] == (
        pytest.approx(0.6)
    )


def test_fused_candidates_read_like_the_list_they_stand_for() -> None:
    rng = np.random.default_rng(7)
    items = [f"i{n}" for n in range(60)]
    results = {
        ch: [(items[j], float(s)) for j, s in zip(rng.integers(0, 60, 40), rng.random(40), strict=True)]
        for ch in ("a", "b", "c", "extra")
    }
    fused = fuse(results, {"a": 1.0, "b": 0.5}, k=25, exclude={"i1", "i2"})
    as_list = list(fused)
    assert len(fused) == 25 and fused == as_list and fused[-1] == as_list[24] and fused[3:5] == as_list[3:5]
    scores = [c.score for c in as_list]
    assert scores == sorted(scores, reverse=True) and not {"i1", "i2"} & {c.item_id for c in as_list}
    # "extra" is no configured channel: no column, but it counts in recall_channel_count
    names, fast = candidate_features(fused, ["a", "b", "c", "z"])
    assert names[-2:] == ["recall_fused_score", "recall_channel_count"]
    for row, cand in enumerate(as_list):  # the arrays say what each Candidate says
        for n, channel in enumerate(["a", "b", "c", "z"]):
            rank = cand.channels.get(channel, (None,))[0]
            assert fast[row, 3 * n] == pytest.approx(0.0 if rank is None else 1 / (rank + 1))
        assert fast[row, -1] == len(cand.channels)
    keep = np.array([20, 3, 7])
    part = fused.take(keep)
    assert list(part) == [as_list[n] for n in keep]
    # a subset keeps each row's features, the relative scores included
    np.testing.assert_array_equal(candidate_features(part, ["a", "b"])[1][:, :6], fast[keep][:, :6])
    assert [part.channel_names(n) for n in range(3)] == [sorted(as_list[n].channels) for n in keep]
    picked = [24, 0, 11, 5]
    assert fused.channel_lists(picked) == [sorted(as_list[n].channels) for n in picked]
    assert fused.channel_lists([]) == [] and part.channel_lists([2]) == [part.channel_names(2)]
    assert fuse({}, {}, k=5) == [] and fuse(results, {}, k=0) == []


def test_top_k_breaks_ties_by_vocabulary_position_and_skips_excluded() -> None:
    vocab = ItemVocab(sorted(["b", "a10", "a9", "c", "d", "e"]))  # "a10" < "a9" as strings
    idx = np.array([5, 2, 0, 3, 4, 1])  # e b a10 c d a9
    scores = np.array([2.0, 2.0, 2.0, 1.0, 0.5, 2.0])  # a10 a9 b e tie
    got = top_k(idx, scores, 3, vocab.lookup({"b", "not-an-item"}))
    assert vocab.to_list(*got) == [("a10", 2.0), ("a9", 2.0), ("e", 2.0)]
    assert vocab.to_list(*top_k(idx, scores, 1)) == [("a10", 2.0)]  # the cut keeps ties
    assert len(top_k(idx, scores, 0)[0]) == 0 and len(top_k(idx[:0], scores[:0], 3)[0]) == 0
    with pytest.raises(InvalidInput, match="sorted"):
        RankedLists.from_entries(np.array(["b", "a"], dtype=object), ["k"], [0], [0], [1.0])
    with pytest.raises(InvalidInput, match="sorted"):
        ItemVocab(["b", "a"])


def test_item_vocab_positions_lookup_and_union() -> None:
    vocab = ItemVocab.union([np.array(["c", "a"], dtype=object), np.array(["b", "c"], dtype=object)])
    assert vocab.ids.tolist() == ["a", "b", "c"]
    assert vocab.positions(np.array(["c", "a"], dtype=object)).tolist() == [2, 0]
    assert vocab.lookup(["c", "zz", "a"]).tolist() == [0, 2]  # sorted, unknown ids left out
    with pytest.raises(InvalidInput, match="outside"):
        vocab.positions(np.array(["a", "zz"], dtype=object))
    lists = RankedLists.from_entries(np.array(["b", "c"], dtype=object), ["k"], [0, 0], [1, 0], [2.0, 1.0])
    moved = lists.with_vocab(vocab)
    assert moved.get_list("k") == lists.get_list("k") == [("c", 2.0), ("b", 1.0)]
    assert moved.vocab is vocab.ids


def _engine_config() -> dict:
    small = {"min_interactions": 1}
    return {
        "channels": [
            {"type": "itemcf", "weight": 1.0, "k": 10, "params": small},
            {"type": "usercf", "weight": 0.5, "k": 10, "params": small},
            {"type": "content", "weight": 0.5, "k": 10},
            {"type": "tag", "weight": 0.3, "params": small},
            {"type": "industry", "weight": 0.2, "params": small},
            {"type": "price_band", "weight": 0.2, "params": {**small, "bands": 2, "min_priced_items": 2}},
            {"type": "popular", "weight": 0.3},
            {"name": "emb", "type": "embedding", "weight": 0.8, "params": {**small, "flat_max_items": 3}},
            {"type": "ease", "weight": 1.0, "params": {**small, "min_item_interactions": 1}},
        ]
    }


def test_engine_filters_and_save_load_round_trip(tmp_path: Path) -> None:
    events = _events(BASKETS) + [("u2", "e", "purchase", AS_OF)]
    d = _data(events)
    engine = RecallEngine(config_from_dict(_engine_config()))
    fit = engine.fit_all(d)
    assert set(fit) == set(engine.names) and all(c.enabled for c in engine.channels)
    ctxs = {"u1": _ctx("c", "a"), "u2": _ctx("b", "a", exclude={"a"}), "new": _ctx("d")}
    before = {u: engine.recall(u, c, k=20) for u, c in ctxs.items()}
    items_u2 = {c.item_id for c in before["u2"]}
    assert "a" not in items_u2  # excluded by the request (the seen set comes with the context)
    assert all(c.item_id != "x" for cands in before.values() for c in cands)  # inactive
    assert "itemcf" in before["u1"][0].channels
    # one vocabulary for all channels; fusing their arrays equals fusing their lists
    assert all(c.vocab is engine.vocab for c in engine.channels)
    for u, ctx in ctxs.items():
        lists = engine.recall_channels(u, ctx)
        assert fuse(lists, engine.weights, 20, ctx.exclude) == before[u]
    engine.save(tmp_path / "recall")
    loaded = RecallEngine.load(tmp_path / "recall")
    assert {u: loaded.recall(u, c, k=20) for u, c in ctxs.items()} == before
    assert loaded.to_lists() == engine.to_lists()
    assert loaded.channel("emb").stats == engine.channel("emb").stats
    assert loaded.channel("ease").to_lists() == engine.channel("ease").to_lists() != {}
    names, matrix = loaded.candidate_features(before["u1"])
    assert names[:3] == ["recall_itemcf_rr", "recall_itemcf_hit", "recall_itemcf_rel"]
    assert matrix.shape == (len(before["u1"]), 29)
    assert np.array_equal(matrix, engine.candidate_features(before["u1"])[1])


def test_shipped_config_loads() -> None:
    config = load_recall_config(CONFIG)
    assert {c.type for c in config.channels} == set(CHANNELS)
    for c in config.channels:
        c.parsed_params()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["channels"].append({"type": "itemfc"}),
            r"channels\[9\] \('itemfc'\): unknown channel "
            r"type 'itemfc'; did you mean 'itemcf'",
        ),
        (
            lambda d: d["channels"][0]["params"].update(neighbors=5),
            r"channels\[0\] \('itemcf'\): params.neighbors",
        ),
        (lambda d: d["channels"][1].update(name="itemcf"), "'itemcf' is used twice"),
        (lambda d: d["channels"][2].update(weight=-1), r"channels\[2\] \('content'\): weight"),
        (lambda d: d.update(interaction_weights={"clik": 1}), "interaction_weights.clik: unknown event type"),
        (lambda d: d["fusion"].update(method="borda"), "fusion.method"),
        (lambda d: d.update(channels=[]), "non-empty"),
    ],
)
def test_config_errors_name_the_entry(change, message: str) -> None:
    data = _engine_config() | {"fusion": {}}
    change(data)
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_recall_config(tmp_path / "nope.yaml")
    bad = tmp_path / "recall.yaml"
    bad.write_text(yaml.safe_dump({"channels": [{"type": "popular", "params": {"category_bost": 1}}]}))
    with pytest.raises(ConfigError, match=r"'popular'\): params.category_bost"):
        load_recall_config(bad)
