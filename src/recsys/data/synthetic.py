"""Deterministic synthetic B2B/B2C marketplace: users, items, orders and events.

The simulation has a hidden ground truth so that models trained on it have something to learn:
users hold stable latent preferences (industries correlated with their own, category and tag
affinities, a price band), items have a Zipf popularity and a latent quality, and a logging policy
shows slates mixing popular and personalised items. Clicks follow an examination model,
``P(click) = relevance(user, item) * (1 + pos) ** -0.7``, and a click may continue down the funnel
click -> view -> add_to_cart -> purchase (plus an ``orders`` row sharing the request id).

Everything comes from ``numpy.random.default_rng(seed)`` (one child stream per stage, so changing
one stage leaves the others alone), arrays are vectorised and no wall clock is read: the same
config gives the same frames. Dirty rows come from their own stream, so the clean rows (all
but their event ids) do not depend on ``dirty_rate``; ``Marketplace.dirty`` lists the dirty ids
by kind (see DIRTY_KINDS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from recsys.contracts import ORDER_STATUSES
from recsys.data.matomo import matomo_visits, write_matomo_export

__all__ = [
    "DIRTY_KINDS",
    "Marketplace",
    "SyntheticConfig",
    "generate_marketplace",
    "matomo_visits",
    "write_matomo_export",
]

# industry -> category -> its tag vocabulary; tags double as title words so TF-IDF has signal
INDUSTRIES: dict[str, dict[str, str]] = {
    "manufacturing": {
        "industrial-tools": "drill grinder wrench torque cordless abrasive",
        "machinery-parts": "bearing gearbox hydraulic valve pump spindle",
        "safety-equipment": "helmet gloves goggles respirator harness earplugs",
        "raw-materials": "steel aluminum polymer resin alloy sheet",
        "packaging": "carton pallet shrinkwrap corrugated tape label",
    },
    "retail": {
        "apparel": "cotton denim jacket shirt knitwear linen",
        "footwear": "sneaker leather boot sandal running insole",
        "home-decor": "lamp cushion rug vase candle frame",
        "toys": "puzzle plush building educational wooden boardgame",
        "beauty": "serum moisturizer fragrance lipstick skincare shampoo",
    },
    "food-beverage": {
        "coffee-tea": "arabica espresso roast matcha blend capsule",
        "snacks": "chips granola nuts chocolate cracker protein",
        "beverages": "juice sparkling soda kombucha water energy",
        "kitchen-equipment": "oven blender mixer fryer refrigerator grill",
        "fresh-produce": "organic fruit vegetable greens seasonal harvest",
    },
    "technology": {
        "laptops": "ultrabook processor ssd display battery notebook",
        "networking": "router switch firewall ethernet wireless mesh",
        "peripherals": "keyboard mouse monitor webcam headset dock",
        "software": "license subscription cloud antivirus analytics backup",
        "components": "motherboard memory gpu chipset cooling psu",
    },
    "healthcare": {
        "medical-supplies": "syringe bandage gauze catheter sterile disposable",
        "lab-equipment": "microscope centrifuge pipette reagent incubator beaker",
        "wellness": "vitamin supplement yoga massage fitness sleep",
        "diagnostics": "thermometer oximeter glucose stethoscope analyzer swab",
        "mobility": "wheelchair walker cane rollator scooter stairlift",
    },
    "construction": {
        "building-materials": "cement brick lumber drywall insulation concrete",
        "plumbing": "pipe faucet fitting drain boiler sink",
        "electrical": "cable breaker socket conduit transformer wiring",
        "hand-tools": "hammer saw chisel level screwdriver plier",
        "paint-coatings": "primer enamel varnish acrylic roller sealant",
    },
    "office": {
        "furniture": "desk chair ergonomic cabinet shelving standing",
        "stationery": "pen binder envelope marker paper stapler",
        "printing": "printer toner ink laser cartridge scanner",
        "cleaning": "detergent disinfectant mop wipes vacuum sanitizer",
        "breakroom": "cups napkins dispenser kettle microwave cutlery",
    },
}
SHARED_TAGS = (
    "premium", "eco", "bulk", "wholesale", "certified", "custom", "budget", "bestseller", "new",
    "refurbished",
)  # fmt: skip
REGIONS = ("north-america", "europe", "asia-pacific", "latam", "middle-east-africa")
REGION_P = (0.32, 0.3, 0.22, 0.1, 0.06)
SCENES = ("home", "detail", "cart", "search")
SCENE_P = (0.45, 0.3, 0.1, 0.15)
PERSONAL_SHARE = np.array([0.4, 0.6, 0.5, 0.7])  # share of personalised slots, by scene
EVENT_CODES = ("impression", "click", "view", "add_to_cart", "purchase")  # funnel order
DIRTY_KINDS: tuple[str, ...] = (
    "local_time", "future_ts", "out_of_order", "exact_duplicate", "near_duplicate",
    "unknown_user", "unknown_item", "price_outlier", "nonpositive_price",
)  # fmt: skip
_EVENT_KINDS = DIRTY_KINDS[:7]  # the last two are item kinds
_BRANDS = (
    "acme", "nordic", "apex", "orion", "vertex", "summit", "atlas", "zenith", "polaris", "granite",
    "harbor",
)  # fmt: skip
_ADJ = (
    "pro", "compact", "heavy-duty", "classic", "smart", "ultra", "essential", "advanced", "lite",
    "deluxe",
)  # fmt: skip
_BLURBS = (
    "Volume discounts for business accounts.",
    "Trusted by professional teams worldwide.",
    "Fast delivery and easy returns.",
    "Built to last under daily use.",
    "Backed by a two year warranty.",
)
_MS_DAY = 86_400_000
_MIN_GAP_MS = 20_000  # between two requests of one user
_NEAR_REPEAT_MS = 5_000  # clean data has no same user/item/type pair closer than this
_MARGIN_MS = 3 * 3_600_000  # sessions start this long before the end so funnels finish in-period


class SyntheticConfig(BaseModel):
    """Size, period and noise of the simulated marketplace."""

    model_config = ConfigDict(extra="forbid")

    users: int = Field(2000, gt=0)
    items: int = Field(1000, gt=0)
    days: int = Field(30, gt=0)
    seed: int = 42
    start: datetime = Field(datetime(2026, 1, 1), description="naive UTC start of the period")
    dirty_rate: float = Field(0.005, ge=0, le=0.5, description="share of rows made dirty")
    requests_per_user_day: float = Field(0.6, gt=0)
    slate_size: int = Field(10, gt=0, le=100)

    @field_validator("start")
    @classmethod
    def _naive_utc(cls, v: datetime) -> datetime:
        # aware datetimes are converted, so that callers may pass either kind
        if v.tzinfo is not None:
            v = pd.Timestamp(v).tz_convert("UTC").tz_localize(None).to_pydatetime()
        return v


@dataclass
class Marketplace:
    """The four source tables, plus the rows made dirty on purpose.

    ``dirty`` maps every DIRTY_KINDS entry to event ids (item ids for the price kinds); for
    duplicates it names the copies, the originals stay clean.
    """

    users: pd.DataFrame
    items: pd.DataFrame
    orders: pd.DataFrame
    events: pd.DataFrame
    dirty: dict[str, list[str]] = field(default_factory=dict)

    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            "users": self.users,
            "items": self.items,
            "orders": self.orders,
            "events": self.events,
        }


_Arrays = dict[str, np.ndarray]


class _World:
    """Hidden state shared by the stages; times are int64 ms relative to ``config.start``."""

    item_cat: np.ndarray  # item -> category
    item_tags: np.ndarray  # (items, 5) tag indices, -1 padded
    item_band: np.ndarray  # price band within the category: 0 budget, 1 mid, 2 premium
    item_pop: np.ndarray
    item_quality: np.ndarray
    item_created: np.ndarray
    price: np.ndarray  # the true price; dirty prices only touch the items frame
    ind_aff: np.ndarray  # (users, industries)
    cat_aff: np.ndarray  # (users, categories), max 1 per user
    user_tags: np.ndarray  # (users, tags + 1) liked tags; the last column stands for "no tag"
    user_band: np.ndarray
    user_created: np.ndarray

    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg
        self.span = cfg.days * _MS_DAY
        _, _, _, self.cat_ind, self.tag_cat = _vocabulary()


def _vocabulary() -> tuple[list[str], list[str], list[str], np.ndarray, np.ndarray]:
    industries = list(INDUSTRIES)
    categories = [c for ind in INDUSTRIES.values() for c in ind]
    cat_ind = np.array([i for i, ind in enumerate(INDUSTRIES.values()) for _ in ind])
    tags: list[str] = []
    tag_cat: list[int] = []
    for c, words in enumerate(w for ind in INDUSTRIES.values() for w in ind.values()):
        tags += words.split()
        tag_cat += [c] * len(words.split())
    tags += SHARED_TAGS
    tag_cat += [-1] * len(SHARED_TAGS)
    return industries, categories, tags, cat_ind, np.array(tag_cat)


def _dt(start: datetime, ms: np.ndarray) -> np.ndarray:
    return (np.datetime64(start, "ms") + ms.astype("timedelta64[ms]")).astype("datetime64[ns]")


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def _row_cdf(weights: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per entry of ``rows`` from that row of ``weights``, vectorised."""
    n_rows, n_cols = weights.shape
    cdf = np.cumsum(weights, axis=1)
    # row offsets make the flattened cdf increasing, so one searchsorted serves every row
    flat = (cdf / cdf[:, -1:] + np.arange(n_rows)[:, None]).ravel()
    idx = np.searchsorted(flat, rows + rng.random(rows.shape), side="right")
    return np.clip(idx - rows * n_cols, 0, n_cols - 1)


def _items(w: _World, rng: np.random.Generator) -> pd.DataFrame:
    cfg, n = w.cfg, w.cfg.items
    industries, categories, tags, _, _ = _vocabulary()
    n_cat, n_specific = len(categories), len(tags) - len(SHARED_TAGS)
    w.item_cat = rng.choice(n_cat, size=n, p=rng.dirichlet(np.full(n_cat, 4.0)))
    cat_tags = np.flatnonzero(w.tag_cat >= 0).reshape(n_cat, -1)  # 6 tags per category
    order = np.argsort(rng.random((n, cat_tags.shape[1])), axis=1)
    chosen = np.take_along_axis(cat_tags[w.item_cat], order, axis=1)[:, :4]
    chosen[np.arange(4)[None, :] >= rng.integers(2, 5, n)[:, None]] = -1
    shared = np.where(rng.random(n) < 0.35, rng.integers(n_specific, len(tags), n), -1)
    w.item_tags = np.column_stack([chosen, shared])
    cat_mu = rng.uniform(np.log(8), np.log(3000), n_cat)
    rel = rng.normal(0, 0.45, n)
    w.price = np.round(np.exp(cat_mu[w.item_cat] + rel), 2)
    w.item_band = np.digitize(rel, [-0.25, 0.25])  # 0 budget, 1 mid, 2 premium within category
    inactive = rng.random(n) < 0.03
    w.item_pop = (rng.permutation(n) + 1.0) ** -1.0 * np.where(inactive, 0.05, 1.0)
    w.item_quality = rng.normal(0, 0.5, n)
    old = rng.random(n) < 0.85
    if not old.any():
        old[0] = True  # slates need at least one item that exists from the start
    w.item_created = np.where(
        old,
        -rng.integers(_MS_DAY, 540 * _MS_DAY, n),
        (rng.random(n) * 0.8 * w.span).astype(np.int64),
    )
    updated = w.item_created + (rng.random(n) * (w.span - w.item_created)).astype(np.int64)
    brand, adj = rng.integers(0, len(_BRANDS), n), rng.integers(0, len(_ADJ), n)
    blurb = rng.integers(0, len(_BLURBS), n)
    titles, descriptions, tag_strings = [], [], []
    for i in range(n):
        words = [tags[t] for t in w.item_tags[i] if t >= 0]
        cat, ind = categories[w.item_cat[i]], industries[w.cat_ind[w.item_cat[i]]]
        noun = cat.replace("-", " ")
        titles.append(f"{_BRANDS[brand[i]].title()} {_ADJ[adj[i]]} {' '.join(words[:2])} {noun}")
        descriptions.append(
            f"{_ADJ[adj[i]].capitalize()} {noun} by {_BRANDS[brand[i]].title()} for "
            f"{ind.replace('-', ' ')} buyers. Features: {', '.join(words)}. {_BLURBS[blurb[i]]}"
        )
        tag_strings.append("|".join(words))
    return pd.DataFrame({
        "item_id": _ids("i", n, 6),
        "title": titles,
        "description": descriptions,
        "category": np.array(categories, dtype=object)[w.item_cat],
        "industry": np.array(industries, dtype=object)[w.cat_ind[w.item_cat]],
        "tags": tag_strings,
        "price": w.price.copy(),
        "status": np.where(inactive, "inactive", "active").astype(object),
        "created_at": _dt(cfg.start, w.item_created),
        "updated_at": _dt(cfg.start, updated),
    })  # fmt: skip


def _users(w: _World, rng: np.random.Generator) -> pd.DataFrame:
    cfg, n = w.cfg, w.cfg.users
    n_ind, n_cat = len(INDUSTRIES), len(w.cat_ind)
    own = rng.choice(n_ind, size=n, p=rng.dirichlet(np.full(n_ind, 5.0)))
    rows = np.arange(n)
    w.ind_aff = np.zeros((n, n_ind))
    for level, prob in ((0.3, 0.35), (0.6, 0.7)):  # lower first, so a stronger draw wins
        other = rng.integers(0, n_ind, n)
        pick = rng.random(n) < prob
        w.ind_aff[rows[pick], other[pick]] = level
    w.ind_aff[rows, own] = 1.0
    w.cat_aff = w.ind_aff[:, w.cat_ind] * rng.gamma(1.5, 1.0, (n, n_cat))
    w.cat_aff /= w.cat_aff.max(axis=1, keepdims=True)
    # 6 liked tags per user, drawn without replacement (Gumbel top-k) from category affinity
    tag_w = np.where(w.tag_cat >= 0, w.cat_aff[:, np.maximum(w.tag_cat, 0)], 0.3)
    keys = np.log(tag_w + 1e-9) + rng.gumbel(size=tag_w.shape)
    liked = np.argpartition(-keys, 6, axis=1)[:, :6]
    w.user_tags = np.zeros((n, len(w.tag_cat) + 1), dtype=bool)  # last column: "no tag"
    w.user_tags[rows[:, None], liked] = True
    w.user_band = rng.choice(3, size=n, p=[0.3, 0.45, 0.25])
    w.user_created = np.where(
        rng.random(n) < 0.9,
        -rng.integers(_MS_DAY, 730 * _MS_DAY, n),
        (rng.random(n) * 0.8 * w.span).astype(np.int64),
    )
    updated = w.user_created + (rng.random(n) * (w.span - w.user_created)).astype(np.int64)
    industry = np.array(list(INDUSTRIES), dtype=object)[own]
    industry[rng.random(n) < 0.02] = None  # the column is optional; some buyers never fill it
    return pd.DataFrame({
        "user_id": _ids("u", n, 6),
        "industry": industry,
        "region": np.array(REGIONS, dtype=object)[rng.choice(len(REGIONS), n, p=REGION_P)],
        "created_at": _dt(cfg.start, w.user_created),
        "updated_at": _dt(cfg.start, updated),
    })  # fmt: skip


def _requests(w: _World, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Requests in sessions, in time order: (user index, ts in ms, scene index) per request."""
    cfg = w.cfg
    lo = np.clip(w.user_created, 0, None)  # users created mid-period only act afterwards
    n_req = rng.poisson(cfg.requests_per_user_day * (w.span - lo) / _MS_DAY)
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
    w: _World, rng: np.random.Generator, user: np.ndarray, ts: np.ndarray, scene: np.ndarray
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


def _behaviour(w: _World, rng: np.random.Generator) -> tuple[_Arrays, _Arrays, np.ndarray]:
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


def _dirty_events(w: _World, ev: _Arrays, req_ts: np.ndarray, rng: np.random.Generator) -> _Arrays:
    """Corrupt or append a few rows per kind; ``ev["kind"]`` is 1 + the DIRTY_KINDS index."""
    n = len(ev["ts"])
    k = max(1, round(w.cfg.dirty_rate * n / len(_EVENT_KINDS)))  # rows per kind
    taken = np.zeros(n, dtype=bool)
    is_type = {name: ev["etype"] == code for code, name in enumerate(EVENT_CODES)}
    lone_imp = is_type["impression"] & ~ev["clicked"]  # corrupting these breaks no funnel

    def pick(candidates: np.ndarray, kind: int) -> np.ndarray:
        pool = np.flatnonzero(candidates & ~taken)
        sel = np.sort(rng.choice(pool, size=min(k, len(pool)), replace=False))
        taken[sel] = True
        ev["kind"][sel] = kind
        return sel

    # a client on local time: every event of a few requests, ts = utc + offset
    counts = np.bincount(ev["req"], minlength=len(req_ts))
    perm = rng.permutation(len(req_ts))
    chosen = perm[: np.searchsorted(np.cumsum(counts[perm]), k) + 1]
    offsets = np.array([480, -300, 330, 60, -420])[rng.integers(0, 5, len(req_ts))]
    local = np.isin(ev["req"], chosen)
    ev["off"][local] = offsets[ev["req"][local]]
    ev["ts"][local] += ev["off"][local] * 60_000
    ev["kind"][local], taken[local] = 1, True
    sel = pick(lone_imp, 2)
    ev["ts"][sel] = w.span + rng.integers(_MS_DAY, 30 * _MS_DAY, len(sel))
    sel = pick(is_type["click"], 3)
    ev["ts"][sel] = req_ts[ev["req"][sel]] - rng.integers(1000, 30_000, len(sel))
    copies = [pick(~is_type["purchase"], 4), pick(~is_type["purchase"], 5)]
    copies += [pick(lone_imp, 6), pick(lone_imp, 7)]
    extra = {key: [] for key in ev}
    for kind, sel in enumerate(copies, start=4):
        ev["kind"][sel] = 0  # the originals stay clean, the copies are the dirty rows
        rows = {key: arr[sel].copy() for key, arr in ev.items()}
        rows["kind"][:] = kind
        if kind == 5:
            rows["ts"] += 500
            rows["upd"] += 500
        elif kind == 6:
            rows["user"] = w.cfg.users + np.arange(len(sel))
        elif kind == 7:
            rows["item"] = w.cfg.items + np.arange(len(sel))
        for key in ev:
            extra[key].append(rows[key])
    return {key: np.concatenate([ev[key], *extra[key]]) for key in ev}


def _dirty_items(w: _World, items: pd.DataFrame, rng: np.random.Generator) -> dict[str, list[str]]:
    k = max(1, round(w.cfg.dirty_rate * len(items)))
    perm = rng.permutation(len(items))
    outlier, nonpositive = np.sort(perm[:k]), np.sort(perm[k : 2 * k])
    items.loc[outlier, "price"] = np.round(items.loc[outlier, "price"] * 100, 2)
    flip = np.where(np.arange(len(nonpositive)) % 2 == 0, 0.0, -1.0)
    items.loc[nonpositive, "price"] = items.loc[nonpositive, "price"] * flip
    return {
        "price_outlier": items.loc[outlier, "item_id"].tolist(),
        "nonpositive_price": items.loc[nonpositive, "item_id"].tolist(),
    }


def _event_frame(w: _World, ev: _Arrays) -> pd.DataFrame:
    order = np.lexsort((np.arange(len(ev["upd"])), ev["upd"]))  # ids follow ingest order
    ev = {key: arr[order] for key, arr in ev.items()}
    n_req = int(ev["req"].max()) + 1 if len(ev["req"]) else 0
    return pd.DataFrame({
        "event_id": _ids("e", len(order), 9),
        "user_id": _ids("u", max(w.cfg.users, int(ev["user"].max(initial=0)) + 1), 6)[ev["user"]],
        "item_id": _ids("i", max(w.cfg.items, int(ev["item"].max(initial=0)) + 1), 6)[ev["item"]],
        "event_type": np.array(EVENT_CODES, dtype=object)[ev["etype"]],
        "ts": _dt(w.cfg.start, ev["ts"]),
        "ts_offset_minutes": pd.arrays.IntegerArray(ev["off"], ev["kind"] != 1),
        "request_id": _ids("r", n_req, 8)[ev["req"]],
        "position": pd.arrays.IntegerArray(ev["pos"], ev["pos"] < 0),
        "value": ev["value"],
        "scene": np.array(SCENES, dtype=object)[ev["scene"]],
        "source": np.full(len(order), "app", dtype=object),
        "updated_at": _dt(w.cfg.start, ev["upd"]),
        "_kind": ev["kind"],
    })  # fmt: skip


def _order_frame(w: _World, o: _Arrays, rng: np.random.Generator) -> pd.DataFrame:
    order = np.lexsort((np.arange(len(o["ts"])), o["ts"]))
    o = {key: arr[order] for key, arr in o.items()}
    n = len(order)
    status = rng.choice(len(ORDER_STATUSES), size=n, p=[0.93, 0.045, 0.025])
    # refunds and cancellations are updates after the purchase, still inside the period
    later = o["ts"] + rng.integers(3_600_000, 7 * _MS_DAY, n)
    updated = np.where(status == 0, o["ts"], np.maximum(np.minimum(later, w.span - 1), o["ts"]))
    n_req = int(o["req"].max()) + 1 if n else 0
    return pd.DataFrame({
        "order_id": _ids("o", n, 8),
        "user_id": _ids("u", w.cfg.users, 6)[o["user"]],
        "item_id": _ids("i", w.cfg.items, 6)[o["item"]],
        "quantity": o["qty"].astype(np.int64),
        "amount": o["amount"],
        "status": np.array(ORDER_STATUSES, dtype=object)[status],
        "request_id": _ids("r", n_req, 8)[o["req"]],
        "created_at": _dt(w.cfg.start, o["ts"]),
        "updated_at": _dt(w.cfg.start, updated),
    })  # fmt: skip


def _streams(seed: int, n: int) -> list[np.random.Generator]:
    # independent child streams: adding draws to one stage does not shift the others
    return np.random.default_rng(seed).spawn(n)


def generate_marketplace(config: SyntheticConfig) -> Marketplace:
    """Simulate ``config.days`` of marketplace traffic; the same config gives the same frames."""
    w = _World(config)
    rng_items, rng_users, rng_behaviour, rng_orders, rng_dirty = _streams(config.seed, 5)
    items = _items(w, rng_items)
    users = _users(w, rng_users)
    ev, orders, req_ts = _behaviour(w, rng_behaviour)
    dirty: dict[str, list[str]] = {kind: [] for kind in DIRTY_KINDS}
    if config.dirty_rate > 0:
        ev = _dirty_events(w, ev, req_ts, rng_dirty)
        dirty.update(_dirty_items(w, items, rng_dirty))
    events = _event_frame(w, ev)
    for code, kind in enumerate(_EVENT_KINDS, start=1):
        dirty[kind] = events.loc[events["_kind"] == code, "event_id"].tolist()
    return Marketplace(
        users=users,
        items=items,
        orders=_order_frame(w, orders, rng_orders),
        events=events.drop(columns="_kind"),
        dirty=dirty,
    )
