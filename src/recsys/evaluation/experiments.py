"""Online experiment metrics: exposures joined with behaviour, per experiment variant.

An *exposure* is one item shown in one served list: the serving layer logs one JSONL record per
request (``request_id``, ``user_id``, ``items``, ``positions``, ``scores``, ``channels``,
``experiment_variant``, ``degrade_level``, ``model_version``, ``ts``) and ``read_exposures``
loads it. Behaviour comes from the events table or from a Matomo export (``events_from_matomo``);
impression events are ignored, the exposure log is the source of truth for what was shown.

Attribution of a click or purchase to an exposure:

* with a ``request_id``: the exposure of that request whose list holds the item. An event whose
  request is not in the log, or whose item was not in that list, is *unattributed*: it came from
  another surface and must not fall back to a looser match.
* without one (trackers that lose the dimension): the latest exposure of the same user and item
  at most ``window`` (default 24 h) before the event.

An exposure counts as clicked when it has an attributed click *or purchase*: a purchase implies
the click that led to it even if the tracker lost that click, which also keeps purchases <= clicks
so that CVR is a proportion. Repeated clicks on one exposure count once; GMV sums every attributed
purchase ``value``. Rates whose denominator is 0 are ``None`` (no data), as are their intervals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.contracts import EVENT_TYPES
from recsys.data.matomo import DIMENSION_REQUEST_ID, DIMENSION_SCENE
from recsys.errors import InvalidInput

Z95 = 1.959963984540054  # two-sided 95 % normal quantile
DEFAULT_WINDOW = timedelta(hours=24)
EXPOSURE_COLUMNS = ("request_id", "user_id", "items", "experiment_variant", "ts")
NO_VARIANT = "none"  # requests served outside any experiment
EVENT_COLUMNS = ("event_id", "user_id", "item_id", "event_type", "ts", "ts_offset_minutes",
                 "request_id", "position", "value", "scene", "source", "updated_at")  # fmt: skip


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval: unlike p +- z*se it stays inside [0, 1] and works for p near 0."""
    if trials <= 0:
        return None
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided pooled two-proportion z-test."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0  # both all-0 or all-1: no evidence of a difference
    z = (x1 / n1 - x2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def sample_ratio_mismatch(counts: Mapping[str, int], expected: Mapping[str, float]) -> tuple[float, float]:
    """Chi-square goodness of fit of observed exposures per variant against the configured split.

    ``expected`` holds weights (normalised here); a configured variant with no traffic counts 0,
    which is exactly the mismatch to alert on. Returns ``(chi2, p_value)``.
    """
    unknown = set(counts) - set(expected)
    if unknown:
        raise InvalidInput(f"variants {sorted(unknown)} have traffic but no expected share")
    if len(expected) < 2 or any(w <= 0 for w in expected.values()):
        raise InvalidInput("expected needs at least two variants with positive shares")
    total = sum(counts.values())
    if total <= 0:
        raise InvalidInput("no traffic to test")
    weight = sum(expected.values())
    chi2 = 0.0
    for variant, share in expected.items():
        exp = total * share / weight
        chi2 += (counts.get(variant, 0) - exp) ** 2 / exp
    # scipy.stats costs ~0.9 s to import, and every evaluation import (train, evaluate, register)
    # would pay it for this one call
    from scipy import stats

    return chi2, float(stats.chi2.sf(chi2, df=len(expected) - 1))


def read_exposures(path: Path) -> pd.DataFrame:
    """The exposure log (JSONL, one request per line) as a frame; blank lines are skipped."""
    records = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path}:{number}: invalid JSON: {exc.msg}") from exc
    return pd.DataFrame.from_records(records)


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    return next((mapping[k] for k in keys if mapping.get(k) not in (None, "")), None)


def _matomo_lines(action: Mapping[str, Any]) -> list[tuple[str, str, int | None, float | None]]:
    """(event_type, item_id, position, value) for each behaviour event in one Matomo action."""
    kind = action.get("type")
    if kind == "event" and action.get("eventCategory") == "recsys":
        event_type, item = action.get("eventAction"), action.get("eventName")
        if event_type not in EVENT_TYPES or not item:
            return []
        position = action.get("eventValue")
        return [(event_type, str(item), None if position in (None, "") else int(float(position)), None)]
    if kind == "action" and "/item/" in str(action.get("url") or ""):
        return [("view", str(action["url"]).rstrip("/").rsplit("/", 1)[-1], None, None)]
    if kind == "ecommerceOrder":
        details = action.get("itemDetails") or []
        lines = [
            (str(d["itemSKU"]), float(d.get("price") or 0) * float(d.get("quantity") or 1)) for d in details
        ]
        total = sum(v for _, v in lines)
        revenue = _first(action, "revenueSubTotal", "revenue")
        # unit prices are rounded, so price * quantity can miss the order total by cents: share
        # the order's own revenue across its lines to keep GMV exact
        scale = float(revenue) / total if revenue is not None and total > 0 else 1.0
        return [("purchase", sku, None, round(v * scale, 2)) for sku, v in lines]
    return []


def events_from_matomo(
    visits: Iterable[Mapping[str, Any]],
    request_dimension: str = DIMENSION_REQUEST_ID,
    scene_dimension: str = DIMENSION_SCENE,
) -> pd.DataFrame:
    """Behaviour events (the events table's columns) from ``Live.getLastVisitsDetails`` visits.

    The inverse of :mod:`recsys.data.matomo`: recsys events, item page views and ecommerce order
    lines become events; other actions are ignored. The request id and scene are read from the
    action's ``customDimensions`` (or a ``dimension<N>`` key). A visit without ``userId`` gets
    ``visitor:<visitorId>``. Matomo keeps whole seconds, so ``ts`` loses sub-second precision.
    """
    rows = []
    for visit in visits:
        user = visit.get("userId") or f"visitor:{visit.get('visitorId')}"
        prefix = f"matomo-{visit.get('idSite', 0)}-{visit.get('idVisit', 0)}"
        for n, action in enumerate(visit.get("actionDetails") or []):
            lines = _matomo_lines(action)
            if not lines:
                continue
            if action.get("timestamp") in (None, ""):
                raise InvalidInput(f"Matomo visit {visit.get('idVisit')} action {n} has no timestamp")
            ts = pd.Timestamp(int(float(action["timestamp"])), unit="s")
            dims = {**{k[9:]: v for k, v in action.items() if k.startswith("dimension")},
                    **(action.get("customDimensions") or {})}  # fmt: skip
            request_id = dims.get(request_dimension) or None
            for line, (event_type, item, position, value) in enumerate(lines):
                rows.append((f"{prefix}-{n}-{line}", str(user), item, event_type, ts, None, request_id,
                             position, value, dims.get(scene_dimension) or None, "matomo", ts))  # fmt: skip
    frame = pd.DataFrame.from_records(rows, columns=list(EVENT_COLUMNS))
    frame["ts"] = pd.to_datetime(frame["ts"])
    frame["updated_at"] = pd.to_datetime(frame["updated_at"])
    for column in ("ts_offset_minutes", "position"):
        frame[column] = frame[column].astype("Int64")
    frame["value"] = frame["value"].astype(float)
    return frame


def _ids(values: pd.Series) -> pd.Series:
    """Ids as str with None for missing/blank, so ints from JSON join strs from SQL."""
    return values.astype(object).map(lambda v: None if v is None or v == "" or pd.isna(v) else str(v))


def _utc(ts: pd.Series) -> pd.Series:
    try:
        if pd.api.types.is_numeric_dtype(ts):
            return pd.to_datetime(ts, unit="s")  # unix seconds
        out = pd.to_datetime(ts, utc=True)  # naive values are taken as UTC already
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"unreadable timestamps: {exc}") from exc
    return out.dt.tz_convert(None)


def _item_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple | np.ndarray):
        return list(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []  # a request that served nothing
    raise InvalidInput(f"exposure items must be a list, got {type(value).__name__}: {value!r:.60}")


def _slots(exposures: pd.DataFrame) -> pd.DataFrame:
    """One row per (request, item) exposed; a request logged twice counts once."""
    missing = [c for c in EXPOSURE_COLUMNS if c not in exposures.columns]
    if missing:
        raise InvalidInput(f"exposures lack column(s) {missing}")
    frame = exposures[list(EXPOSURE_COLUMNS)].copy()
    frame["model_version"] = _ids(exposures["model_version"]) if "model_version" in exposures else None
    frame["request_id"] = _ids(frame["request_id"])
    if frame["request_id"].isna().any():
        raise InvalidInput("every exposure needs a request_id")
    frame["user_id"] = _ids(frame["user_id"])
    frame["experiment_variant"] = _ids(frame["experiment_variant"]).fillna(NO_VARIANT)
    frame["ts"] = _utc(frame["ts"])
    frame["items"] = frame["items"].map(_item_list)
    slots = frame.explode("items").rename(columns={"items": "item_id"})
    slots = slots[slots["item_id"].notna()].assign(item_id=lambda f: _ids(f["item_id"]))
    return slots.drop_duplicates(["request_id", "item_id"]).reset_index(drop=True)


def _attribute(
    slots: pd.DataFrame, events: pd.DataFrame, window: timedelta
) -> tuple[pd.DataFrame, dict[str, int]]:
    """(attributed click/purchase events with their slot number, unattributed counts by type)."""
    missing = [c for c in ("user_id", "item_id", "event_type", "ts") if c not in events.columns]
    if missing:
        raise InvalidInput(f"events lack column(s) {missing}")
    ev = events[events["event_type"].isin(("click", "purchase"))]
    ev = pd.DataFrame({
        "user_id": _ids(ev["user_id"]), "item_id": _ids(ev["item_id"]), "event_type": ev["event_type"],
        "request_id": _ids(ev["request_id"]) if "request_id" in ev else None,
        "value": pd.to_numeric(ev["value"], errors="coerce").fillna(0.0) if "value" in ev else 0.0,
        "ts": _utc(ev["ts"]),
    })  # fmt: skip
    if "ts_offset_minutes" in events:  # local-time rows: the window is measured in UTC
        offset = pd.to_numeric(events.loc[ev.index, "ts_offset_minutes"], errors="coerce").fillna(0)
        ev["ts"] = ev["ts"] - pd.to_timedelta(offset, unit="min")
    keyed = slots[["request_id", "item_id"]].assign(slot=np.arange(len(slots)))
    with_id = ev[ev["request_id"].notna()].merge(keyed, on=["request_id", "item_id"], how="left")
    loose = ev[ev["request_id"].isna() & ev["ts"].notna()].sort_values("ts", kind="stable")
    candidates = slots[["user_id", "item_id", "ts"]].assign(slot=np.arange(len(slots)))
    candidates = candidates[candidates["ts"].notna()]
    without_id = pd.merge_asof(
        loose, candidates.sort_values("ts", kind="stable"), on="ts", by=["user_id", "item_id"],
        direction="backward", tolerance=pd.Timedelta(window),
    )  # fmt: skip
    joined = pd.concat([with_id, without_id], ignore_index=True)
    lost = ev["request_id"].isna() & ev["ts"].isna()  # no id and no time: cannot be placed
    unattributed = joined[joined["slot"].isna()]["event_type"].value_counts()
    counts = {t: int(unattributed.get(t, 0)) + int((lost & (ev["event_type"] == t)).sum())
              for t in ("click", "purchase")}  # fmt: skip
    return joined[joined["slot"].notna()].astype({"slot": "int64"}), counts


def _rate(x: int, n: int) -> dict[str, Any]:
    return {"value": x / n if n else None, "ci95": wilson_interval(x, n)}


def _mean_ci(values: pd.Series) -> dict[str, Any]:
    """Mean with a normal-approximation 95 % interval (GMV per exposure is far from binary)."""
    n = len(values)
    if n == 0:
        return {"value": None, "ci95": None}
    mean = float(values.mean())
    half = Z95 * math.sqrt(float(values.var(ddof=1)) / n) if n > 1 else 0.0
    return {"value": mean, "ci95": (mean - half, mean + half)}


def _lift(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else (value - base) / base


def _variant(group: pd.DataFrame) -> dict[str, Any]:
    n, clicks, buys = len(group), int(group["clicked"].sum()), int(group["purchased"].sum())
    gmv = float(group["gmv"].sum())
    return {
        "requests": int(group["request_id"].nunique()),
        "exposures": n,
        "clicks": clicks,
        "ctr": _rate(clicks, n),
        "purchases": buys,
        "cvr": _rate(buys, clicks),
        "gmv": gmv,
        "gmv_per_exposure": _mean_ci(group["gmv"]),
        "model_versions": sorted(group["model_version"].dropna().unique().tolist()),
    }


def _lifts(v: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    rates = {m: _lift(v[m]["value"], base[m]["value"]) for m in ("ctr", "cvr", "gmv_per_exposure")}
    return {
        **rates,
        "ctr_p_value": two_proportion_p_value(v["clicks"], v["exposures"], base["clicks"], base["exposures"]),
        "cvr_p_value": two_proportion_p_value(v["purchases"], v["clicks"], base["purchases"], base["clicks"]),
    }


def variant_report(
    exposures: pd.DataFrame,
    events: pd.DataFrame,
    control: str | None = None,
    window: timedelta = DEFAULT_WINDOW,
) -> dict[str, Any]:
    """Exposures, clicks, CTR, purchases, CVR, GMV and GMV per exposure per variant, with lifts vs control.

    ``control`` defaults to the first variant by name. Lifts are relative, ``(v - c) / c``, and
    ``None`` when the control value is 0 or missing; p-values are two-proportion z-tests.
    """
    slots = _slots(exposures)
    if slots.empty:
        raise InvalidInput("the exposure log has no exposed items")
    attributed, unattributed = _attribute(slots, events, window)
    slot, n = attributed["slot"].to_numpy(), len(slots)
    is_buy = (attributed["event_type"] == "purchase").to_numpy()
    # any attributed click or purchase makes the exposure clicked: see the module docstring
    slots["clicked"] = np.bincount(slot, minlength=n) > 0
    slots["purchased"] = np.bincount(slot, weights=is_buy, minlength=n) > 0
    slots["gmv"] = np.bincount(slot, weights=np.where(is_buy, attributed["value"], 0.0), minlength=n)
    report = {str(name): _variant(group) for name, group in slots.groupby("experiment_variant")}
    control = min(report) if control is None else control
    if control not in report:
        raise InvalidInput(f"control variant {control!r} has no exposures (variants: {sorted(report)})")
    return {
        "control": control,
        "attribution_window_hours": pd.Timedelta(window).total_seconds() / 3600,
        "variants": report,
        "lift": {name: _lifts(v, report[control]) for name, v in report.items() if name != control},
        "unattributed": unattributed,
    }
