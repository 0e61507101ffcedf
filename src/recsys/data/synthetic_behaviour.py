"""The behaviour side of the synthetic marketplace: requests, slates, the funnel, event and order frames.

Internal to :mod:`recsys.data.synthetic`, the public entry point. The stages work on int64 ms
times relative to ``config.start`` and on index arrays; the frames are built at the end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.contracts import ORDER_STATUSES
from recsys.data.synthetic_catalog import MS_DAY, World, as_datetime, make_ids

SCENES = ("home", "detail", "cart", "search")
SCENE_P = (0.45, 0.3, 0.1, 0.15)
PERSONAL_SHARE = np.array([0.4, 0.6, 0.5, 0.7])  # share of personalised slots, by scene
EVENT_CODES = ("impression", "click", "view", "add_to_cart", "purchase")  # funnel order
_MIN_GAP_MS = 20_000  # between two requests of one user
_NEAR_REPEAT_MS = 5_000  # clean data has no same user/item/type pair closer than this
_MARGIN_MS = 3 * 3_600_000  # sessions start this long before the end so funnels finish in-period

Arrays = dict[str, np.ndarray]


def _row_cdf(weights: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per entry of ``rows`` from that row of ``weights``, vectorised."""
    n_rows, n_cols = weights.shape
    cdf = np.cumsum(weights, axis=1)
    # row offsets make the flattened cdf increasing, so one searchsorted serves every row
    flat = (cdf / cdf[:, -1:] + np.arange(n_rows)[:, None]).ravel()
    idx = np.searchsorted(flat, rows + rng.random(rows.shape), side="right")
    return np.clip(idx - rows * n_cols, 0, n_cols - 1)


def _requests(w: World, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Requests in sessions, in time order: (user index, ts in ms, scene index) per request."""
    cfg = w.cfg
    lo = np.clip(w.user_created, 0, None)  # users created mid-period only act afterwards
    n_req = rng.poisson(cfg.requests_per_user_day * (w.span - lo) / MS_DAY)
    user = np.repeat(np.arange(cfg.users), n_req)
    first = (np.cumsum(n_req) - n_req)[n_req > 0]
    new = rng.random(len(user)) < 0.4  # a request starts a new session, else continues one
    new[first] = True
    sess = np.cumsum(new) - 1
    sess_user = user[new]
    room = np.maximum(w.span - lo[sess_user] - _MARGIN_MS, 0)
    sess_start = lo[sess_user] + (rng.random(len(sess_user)) * room).astype(np.int64)
    gap = np.where(new, 0, _MIN_GAP_MS + rng.exponential(90_000, len(user)).astype(np.int64))
    cum = np.cumsum(gap)
    ts = sess_start[sess] + cum - cum[np.flatnonzero(new)][sess]
    # sessions of one user may overlap: push requests apart so that they are >= _MIN_GAP_MS apart,
    # t'[k] = k * gap + max_{j <= k} (t[j] - j * gap), as one cummax over user-offset values
    order = np.lexsort((ts, user))
    ts = ts[order]
    k = np.arange(len(user)) - np.repeat(first, n_req[n_req > 0])
    big = w.span + (int(k.max(initial=0)) + 2) * _MIN_GAP_MS
    shifted = ts - k * _MIN_GAP_MS + user * big
    ts = np.maximum.accumulate(shifted) - user * big + k * _MIN_GAP_MS
    chrono = np.argsort(ts, kind="stable")  # request ids follow time
    return user[chrono], ts[chrono], rng.choice(len(SCENES), size=len(user), p=SCENE_P)


def _slates(
    w: World, rng: np.random.Generator, user: np.ndarray, ts: np.ndarray, scene: np.ndarray
) -> np.ndarray:
    """(requests x slate) item indices: popular and personalised picks, ordered by the policy."""
    n_items, n_cat = len(w.item_cat), len(w.cat_ind)
    old_idx = np.flatnonzero(w.item_created <= 0)
    size = min(w.cfg.slate_size, len(old_idx))
    shape = (len(user), size)
    pop_cdf = np.cumsum(w.item_pop)
    popular = np.searchsorted(pop_cdf, rng.random(shape) * pop_cdf[-1], side="right")
    # personalised: a category by squared affinity, then an item by popularity in that category
    cat = _row_cdf(w.cat_aff**2, np.repeat(user[:, None], size, axis=1), rng)
    by_cat = np.argsort(w.item_cat, kind="stable")
    cats = w.item_cat[by_cat]
    cum = np.r_[0.0, np.cumsum(w.item_pop[by_cat])]
    lo = cum[np.searchsorted(cats, np.arange(n_cat))]
    hi = cum[np.searchsorted(cats, np.arange(n_cat), side="right")]
    flat = cats + (cum[1:] - lo[cats]) / (hi - lo)[cats]  # increasing: category + in-category cdf
    found = np.searchsorted(flat, cat + rng.random(shape), side="right")
    picked = by_cat[np.minimum(found, n_items - 1)]
    personal = rng.random(shape) < PERSONAL_SHARE[scene][:, None]
    slate = np.where(personal, picked, np.minimum(popular, n_items - 1))
    for _ in range(100):  # replace items not launched yet and repeats within a slate
        bad = w.item_created[slate] > ts[:, None]
        order = np.argsort(slate, axis=1, kind="stable")
        ranked = np.take_along_axis(slate, order, axis=1)
        repeat = np.zeros(shape, dtype=bool)
        repeat[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
        np.put_along_axis(bad, order, np.take_along_axis(bad, order, axis=1) | repeat, axis=1)
        if not bad.any():
            break
        slate[bad] = old_idx[rng.integers(0, len(old_idx), int(bad.sum()))]
    # the logging policy ranks by popularity and category affinity, with noise
    score = 0.3 * np.log(w.item_pop[slate]) + w.cat_aff[user[:, None], w.item_cat[slate]]
    score += rng.normal(0, 1, shape)
    return np.take_along_axis(slate, np.argsort(-score, axis=1, kind="stable"), axis=1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _delay(rng: np.random.Generator, n: int, floor: int, median: float, cap: int) -> np.ndarray:
    return floor + np.minimum(rng.lognormal(np.log(median), 0.8, n), cap).astype(np.int64)


def _cut_near_repeats(
    user: np.ndarray, item: np.ndarray, times: list[np.ndarray], alive: list[np.ndarray]
) -> None:
    """End a funnel at a stage repeating the user/item/stage of another request within seconds.

    Funnels of two close requests can overlap; a cleaner would take such a pair for a
    near-duplicate, so clean data must not contain one.
    """
    for stage, t in enumerate(times):
        idx = np.flatnonzero(alive[stage])
        o = idx[np.lexsort((t[idx], item[idx], user[idx]))]
        same = (user[o][1:] == user[o][:-1]) & (item[o][1:] == item[o][:-1])
        repeat = o[1:][same & (t[o][1:] - t[o][:-1] < _NEAR_REPEAT_MS)]
        for later in alive[stage:]:
            later[repeat] = False


def simulate_behaviour(w: World, rng: np.random.Generator) -> tuple[Arrays, Arrays, np.ndarray]:
    """Event arrays (every funnel stage), order arrays and the request timestamps."""
    user, req_ts, scene = _requests(w, rng)
    slate = _slates(w, rng, user, req_ts, scene)
    size = slate.shape[1]
    req = np.repeat(np.arange(len(user)), size)
    u, it, pos = user[req], slate.ravel(), np.tile(np.arange(size), len(user))
    cat = w.item_cat[it]
    tags = np.where(w.item_tags[it] < 0, w.user_tags.shape[1] - 1, w.item_tags[it])
    overlap = w.user_tags[u[:, None], tags].sum(axis=1)
    band = 1 - np.abs(w.user_band[u] - w.item_band[it])  # 1 match, 0 next band, -1 opposite
    # weights tuned for a CTR of ~5-6% where the industry match and the category affinity (which
    # click history reveals) dominate: a ranker on observable features reaches an AUC of ~0.8
    logit = (
        -4.3 + 1.6 * w.ind_aff[u, w.cat_ind[cat]] + 1.4 * w.cat_aff[u, cat] + 0.6 * overlap
        + 0.6 * band + w.item_quality[it] + rng.normal(0, 0.4, len(u))
    )  # fmt: skip
    clicked = rng.random(len(u)) < _sigmoid(logit) * (1.0 + pos) ** -0.7
    ci = np.flatnonzero(clicked)
    n = len(ci)
    view = rng.random(n) < 0.85
    p_cart = _sigmoid(-1.7 + 0.8 * band[ci] + 0.8 * w.cat_aff[u[ci], cat[ci]])
    cart = view & (rng.random(n) < p_cart)
    buy = cart & (rng.random(n) < 0.45)
    t_click = req_ts[req[ci]] + _delay(rng, n, 1000, 6000, 120_000)
    t_view = t_click + rng.integers(1000, 3000, n)  # >= 1 s: a 0.5 s near-duplicate stays in order
    t_cart = t_view + _delay(rng, n, 5000, 60_000, 1_200_000)
    t_buy = t_cart + _delay(rng, n, 20_000, 180_000, 3_600_000)
    qty = np.where(rng.random(n) < 0.65, 1, 2 + rng.poisson(3, n))
    times, alive = [t_click, t_view, t_cart, t_buy], [np.ones(n, dtype=bool), view, cart, buy]
    _cut_near_repeats(u[ci], it[ci], times, alive)
    clicked[ci[~alive[0]]] = False
    buy = alive[3]
    parts = [(np.arange(len(u)), 0, req_ts[req])]
    parts += [(ci[a], code, t[a]) for code, (t, a) in enumerate(zip(times, alive, strict=True), 1)]
    idx = np.concatenate([p[0] for p in parts])
    etype = np.concatenate([np.full(len(p[0]), p[1], np.int8) for p in parts])
    value = np.full(len(idx), np.nan)
    value[etype == 4] = np.round(w.price[it[ci[buy]]] * qty[buy], 2)
    ts = np.concatenate([p[2] for p in parts])
    ev = {
        "user": u[idx], "item": it[idx], "etype": etype, "ts": ts,
        "off": np.zeros(len(idx), np.int64), "req": req[idx],
        "pos": np.where(etype <= 1, pos[idx], -1), "value": value, "scene": scene[req[idx]],
        "upd": ts + rng.integers(50, 3000, len(idx)), "kind": np.zeros(len(idx), np.int8),
        "clicked": np.r_[clicked, np.zeros(len(idx) - len(u), bool)],
    }  # fmt: skip
    bi = ci[buy]
    orders = {
        "user": u[bi], "item": it[bi], "qty": qty[buy], "amount": value[etype == 4],
        "req": req[bi], "ts": t_buy[buy],
    }  # fmt: skip
    return ev, orders, req_ts


def event_frame(w: World, ev: Arrays) -> pd.DataFrame:
    order = np.lexsort((np.arange(len(ev["upd"])), ev["upd"]))  # ids follow ingest order
    ev = {key: arr[order] for key, arr in ev.items()}
    n_req = int(ev["req"].max()) + 1 if len(ev["req"]) else 0
    return pd.DataFrame({
        "event_id": make_ids("e", len(order), 9),
        "user_id": make_ids("u", max(w.cfg.users, int(ev["user"].max(initial=0)) + 1), 6)[ev["user"]],
        "item_id": make_ids("i", max(w.cfg.items, int(ev["item"].max(initial=0)) + 1), 6)[ev["item"]],
        "event_type": np.array(EVENT_CODES, dtype=object)[ev["etype"]],
        "ts": as_datetime(w.cfg.start, ev["ts"]),
        "ts_offset_minutes": pd.arrays.IntegerArray(ev["off"], ev["kind"] != 1),
        "request_id": make_ids("r", n_req, 8)[ev["req"]],
        "position": pd.arrays.IntegerArray(ev["pos"], ev["pos"] < 0),
        "value": ev["value"],
        "scene": np.array(SCENES, dtype=object)[ev["scene"]],
        "source": np.full(len(order), "app", dtype=object),
        "updated_at": as_datetime(w.cfg.start, ev["upd"]),
        "_kind": ev["kind"],
    })  # fmt: skip


def order_frame(w: World, o: Arrays, rng: np.random.Generator) -> pd.DataFrame:
    order = np.lexsort((np.arange(len(o["ts"])), o["ts"]))
    o = {key: arr[order] for key, arr in o.items()}
    n = len(order)
    status = rng.choice(len(ORDER_STATUSES), size=n, p=[0.93, 0.045, 0.025])
    # refunds and cancellations are updates after the purchase, still inside the period
    later = o["ts"] + rng.integers(3_600_000, 7 * MS_DAY, n)
    updated = np.where(status == 0, o["ts"], np.maximum(np.minimum(later, w.span - 1), o["ts"]))
    n_req = int(o["req"].max()) + 1 if n else 0
    return pd.DataFrame({
        "order_id": make_ids("o", n, 8),
        "user_id": make_ids("u", w.cfg.users, 6)[o["user"]],
        "item_id": make_ids("i", w.cfg.items, 6)[o["item"]],
        "quantity": o["qty"].astype(np.int64),
        "amount": o["amount"],
        "status": np.array(ORDER_STATUSES, dtype=object)[status],
        "request_id": make_ids("r", n_req, 8)[o["req"]],
        "created_at": as_datetime(w.cfg.start, o["ts"]),
        "updated_at": as_datetime(w.cfg.start, updated),
    })  # fmt: skip
