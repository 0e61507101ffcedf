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

This module is the public entry point; the stages live in ``synthetic_catalog`` (config,
vocabulary, items, users and their hidden preferences), ``synthetic_behaviour`` (requests,
slates, the funnel, event and order frames) and ``synthetic_dirty`` (dirty rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.data.matomo import matomo_visits, write_matomo_export
from recsys.data.synthetic_behaviour import event_frame, order_frame, simulate_behaviour
from recsys.data.synthetic_catalog import SyntheticConfig, World, items_frame, users_frame
from recsys.data.synthetic_dirty import DIRTY_KINDS, EVENT_KINDS, dirty_events, dirty_items

__all__ = [
    "DIRTY_KINDS",
    "Marketplace",
    "SyntheticConfig",
    "generate_marketplace",
    "matomo_visits",
    "write_matomo_export",
]


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


def _streams(seed: int, n: int) -> list[np.random.Generator]:
    # independent child streams: adding draws to one stage does not shift the others
    return np.random.default_rng(seed).spawn(n)


def generate_marketplace(config: SyntheticConfig) -> Marketplace:
    """Simulate ``config.days`` of marketplace traffic; the same config gives the same frames."""
    w = World(config)
    rng_items, rng_users, rng_behaviour, rng_orders, rng_dirty = _streams(config.seed, 5)
    items = items_frame(w, rng_items)
    users = users_frame(w, rng_users)
    ev, orders, req_ts = simulate_behaviour(w, rng_behaviour)
    dirty: dict[str, list[str]] = {kind: [] for kind in DIRTY_KINDS}
    if config.dirty_rate > 0:
        ev = dirty_events(w, ev, req_ts, rng_dirty)
        dirty.update(dirty_items(w, items, rng_dirty))
    events = event_frame(w, ev)
    for code, kind in enumerate(EVENT_KINDS, start=1):
        dirty[kind] = events.loc[events["_kind"] == code, "event_id"].tolist()
    return Marketplace(
        users=users,
        items=items,
        orders=order_frame(w, orders, rng_orders),
        events=events.drop(columns="_kind"),
        dirty=dirty,
    )
