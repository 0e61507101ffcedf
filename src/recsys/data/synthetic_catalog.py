"""The catalogue side of the synthetic marketplace: vocabulary, config, items, users, preferences.

Internal to :mod:`recsys.data.synthetic`, the public entry point. ``World`` holds the hidden
ground truth (item popularity, quality and price band, user affinities) that the behaviour stage
reads; the items and users frames are drawn from their own random streams.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

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
MS_DAY = 86_400_000


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


class World:
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
        self.span = cfg.days * MS_DAY
        _, _, _, self.cat_ind, self.tag_cat = vocabulary()


def vocabulary() -> tuple[list[str], list[str], list[str], np.ndarray, np.ndarray]:
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


def as_datetime(start: datetime, ms: np.ndarray) -> np.ndarray:
    return (np.datetime64(start, "ms") + ms.astype("timedelta64[ms]")).astype("datetime64[ns]")


def make_ids(prefix: str, n: int, width: int) -> np.ndarray:
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def items_frame(w: World, rng: np.random.Generator) -> pd.DataFrame:
    cfg, n = w.cfg, w.cfg.items
    industries, categories, tags, _, _ = vocabulary()
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
        -rng.integers(MS_DAY, 540 * MS_DAY, n),
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
        "item_id": make_ids("i", n, 6),
        "title": titles,
        "description": descriptions,
        "category": np.array(categories, dtype=object)[w.item_cat],
        "industry": np.array(industries, dtype=object)[w.cat_ind[w.item_cat]],
        "tags": tag_strings,
        "price": w.price.copy(),
        "status": np.where(inactive, "inactive", "active").astype(object),
        "created_at": as_datetime(cfg.start, w.item_created),
        "updated_at": as_datetime(cfg.start, updated),
    })  # fmt: skip


def users_frame(w: World, rng: np.random.Generator) -> pd.DataFrame:
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
        -rng.integers(MS_DAY, 730 * MS_DAY, n),
        (rng.random(n) * 0.8 * w.span).astype(np.int64),
    )
    updated = w.user_created + (rng.random(n) * (w.span - w.user_created)).astype(np.int64)
    industry = np.array(list(INDUSTRIES), dtype=object)[own]
    industry[rng.random(n) < 0.02] = None  # the column is optional; some buyers never fill it
    return pd.DataFrame({
        "user_id": make_ids("u", n, 6),
        "industry": industry,
        "region": np.array(REGIONS, dtype=object)[rng.choice(len(REGIONS), n, p=REGION_P)],
        "created_at": as_datetime(cfg.start, w.user_created),
        "updated_at": as_datetime(cfg.start, updated),
    })  # fmt: skip
