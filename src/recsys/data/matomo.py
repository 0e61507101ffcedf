"""Export a marketplace in the shape of Matomo's Reporting API ``Live.getLastVisitsDetails``.

This gives the Matomo importer (and anyone wiring a real Matomo) a realistic input without a
Matomo server. Mapping:

* Visit: one user's events (sorted by UTC time) with no gap above 30 minutes. Keys: ``idSite``,
  ``idVisit`` (1.. in order of the first action), ``visitorId`` (first 16 hex chars of
  SHA-1(user_id), stable across runs), ``userId``, ``visitorType`` (``new`` for the user's first
  visit, else ``returning``), ``visitCount``, ``serverDate`` (UTC date of the first action),
  ``firstActionTimestamp``/``lastActionTimestamp`` (unix seconds), ``visitDuration`` (seconds),
  ``actions`` (length of ``actionDetails``), ``visitEcommerceStatus`` (``ordered``/``none``),
  ``totalEcommerceRevenue``, ``totalEcommerceConversions``, ``totalEcommerceItems``.
* ``impression``, ``click``, ``add_to_cart`` -> ``{"type": "event", "eventCategory": "recsys",
  "eventAction": <event_type>, "eventName": <item_id>}`` plus ``eventValue`` = slate position
  where the event has one.
* ``view`` -> ``{"type": "action", "url": ".../item/<item_id>", "pageTitle": <item title>}``.
* ``purchase`` -> ``{"type": "ecommerceOrder", "orderId", "revenue", "revenueSubTotal", "items",
  "itemDetails": [{"itemSKU", "itemName", "itemCategory", "price", "quantity"}]}``; the order id
  and quantity come from the ``orders`` row with the same request id and item, ``price`` is the
  unit price actually paid (revenue / quantity), so revenue totals equal the purchase GMV.
* Every action carries ``timestamp`` (unix seconds) and action-scope custom dimensions
  ``"customDimensions": {"1": request_id, "2": scene}``.

Matomo records server time, so rows logged in local time (``ts_offset_minutes``) are exported in
UTC; every other row keeps its recorded time, dirty ones included (future, out of order,
duplicates, unknown ids), so that an importer meets the same problems as the SQL source.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from recsys.data.synthetic import Marketplace

VISIT_GAP_SECONDS = 30 * 60
DIMENSION_REQUEST_ID = "1"
DIMENSION_SCENE = "2"
SHOP_URL = "https://shop.example.com/item/"


def visitor_id(user_id: str) -> str:
    """Matomo-style 16 hex char visitor id, stable for a user id (unlike Python's hash())."""
    return hashlib.sha1(user_id.encode("utf-8")).hexdigest()[:16]


class _Row(NamedTuple):
    event_id: str
    user_id: str
    item_id: str
    event_type: str
    request_id: str
    scene: str
    value: float
    utc_ms: int
    position: int  # -1 when the event has none


def _rows(events: pd.DataFrame) -> list[_Row]:
    """Events as plain Python rows, by user then UTC time (the order visits are cut in)."""
    offset = events["ts_offset_minutes"].astype("Float64").fillna(0).to_numpy("int64")
    utc_ms = events["ts"].to_numpy("datetime64[ms]").astype(np.int64) - offset * 60_000
    frame = events.assign(utc_ms=utc_ms, position=events["position"].fillna(-1).astype("int64"))
    frame = frame.sort_values(["user_id", "utc_ms", "event_id"], kind="stable")
    columns = [frame[name].tolist() for name in _Row._fields]
    return list(map(_Row._make, zip(*columns, strict=True)))


def _action(
    row: _Row, items: dict[str, tuple[str, str]], orders: dict[tuple[str, str], tuple[str, int]]
) -> dict[str, Any]:
    kind, item_id = row.event_type, row.item_id
    base: dict[str, Any] = {
        "timestamp": row.utc_ms // 1000,
        "customDimensions": {DIMENSION_REQUEST_ID: row.request_id, DIMENSION_SCENE: row.scene},
    }
    if kind == "view":
        title = items.get(item_id, (None, None))[0]
        return {"type": "action", "url": SHOP_URL + item_id, "pageTitle": title, **base}
    if kind == "purchase":
        title, category = items.get(item_id, (None, None))
        order_id, quantity = orders.get((row.request_id, item_id), (row.event_id, 1))
        revenue = round(row.value, 2)
        detail = {
            "itemSKU": item_id,
            "itemName": title,
            "itemCategory": category,
            "price": round(revenue / quantity, 2),
            "quantity": quantity,
        }
        return {
            "type": "ecommerceOrder",
            "orderId": order_id,
            "revenue": revenue,
            "revenueSubTotal": revenue,
            "items": 1,
            "itemDetails": [detail],
            **base,
        }
    action = {"type": "event", "eventCategory": "recsys", "eventAction": kind, "eventName": item_id}
    if row.position >= 0:
        action["eventValue"] = row.position
    return {**action, **base}


def _visit(user_id: str, actions: list[dict[str, Any]], count: int, site_id: int) -> dict[str, Any]:
    first, last = actions[0]["timestamp"], actions[-1]["timestamp"]
    orders = [a for a in actions if a["type"] == "ecommerceOrder"]
    return {
        "idSite": site_id,
        "idVisit": 0,  # numbered once all visits are known, in time order
        "visitorId": visitor_id(user_id),
        "userId": user_id,
        "visitorType": "new" if count == 1 else "returning",
        "visitCount": count,
        "serverDate": datetime.fromtimestamp(first, UTC).strftime("%Y-%m-%d"),
        "firstActionTimestamp": first,
        "lastActionTimestamp": last,
        "visitDuration": last - first,
        "actions": len(actions),
        "visitEcommerceStatus": "ordered" if orders else "none",
        "totalEcommerceRevenue": round(sum(a["revenue"] for a in orders), 2),
        "totalEcommerceConversions": len(orders),
        "totalEcommerceItems": sum(a["itemDetails"][0]["quantity"] for a in orders),
        "actionDetails": actions,
    }


def matomo_visits(market: Marketplace, site_id: int = 1) -> list[dict[str, Any]]:
    """The marketplace's events as Live.getLastVisitsDetails visits, oldest first."""
    items = dict(
        zip(
            market.items["item_id"],
            zip(market.items["title"], market.items["category"], strict=True),
            strict=True,
        )
    )
    o = market.orders
    keys = zip(o["request_id"], o["item_id"], strict=True)
    values = zip(o["order_id"], o["quantity"].astype(int).tolist(), strict=True)
    orders = dict(zip(keys, values, strict=True))
    visits: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    user, last_ms, count = None, 0, 0
    for row in _rows(market.events):
        if row.user_id != user or row.utc_ms - last_ms > VISIT_GAP_SECONDS * 1000:
            if actions:
                visits.append(_visit(user, actions, count, site_id))
            count = count + 1 if row.user_id == user else 1
            user, actions = row.user_id, []
        actions.append(_action(row, items, orders))
        last_ms = row.utc_ms
    if actions:
        visits.append(_visit(user, actions, count, site_id))
    visits.sort(key=lambda v: (v["firstActionTimestamp"], v["userId"], v["visitCount"]))
    for n, visit in enumerate(visits, start=1):
        visit["idVisit"] = n
    return visits


def write_matomo_export(market: Marketplace, path: Path) -> int:
    """Write the visits as JSON atomically (temp file + rename); returns the number of visits."""
    visits = matomo_visits(market)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        # one-shot dumps uses the C encoder; json.dump would stream through the Python one
        tmp.write_text(json.dumps(visits, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(visits)
