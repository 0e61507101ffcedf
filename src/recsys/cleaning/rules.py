"""The cleaning rules and their registry, ``RULES``, applied in list order.

A rule is one function ``(frame, ctx) -> frame`` that drops rows with ``ctx.drop`` or counts
fixes with ``ctx.fixed``; adding a rule is one function here plus one ``Rule`` entry below.
Rules receive a frame the cleaner owns (a copy with a unique index, sorted by primary key),
so they may modify it in place and never see the caller's frames. Rules must keep the row
order (drop or fix rows, never reorder): later rules rely on it to break ties by primary key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.cleaning import outliers
from recsys.cleaning.config import CleaningConfig
from recsys.cleaning.report import CleaningReport
from recsys.cleaning.sequences import (
    FUNNEL_RANK,
    combine_codes,
    enforce_funnel_order,
    near_duplicate_mask,
    to_ns,
)
from recsys.contracts import CONTRACTS, EVENT_TYPES, TableContract

PRICE_OUTLIER = "price_outlier"


@dataclass
class RuleContext:
    """What a rule may read (config, run time, already-cleaned parent tables) and count into."""

    table: str
    config: CleaningConfig
    now: pd.Timestamp
    report: CleaningReport
    parents: Mapping[str, pd.DataFrame]

    @property
    def contract(self) -> TableContract:
        return CONTRACTS[self.table]

    def drop(self, frame: pd.DataFrame, mask: pd.Series | np.ndarray, reason: str) -> pd.DataFrame:
        """Remove the rows where ``mask`` is True, counting them under ``reason``."""
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n == 0:
            return frame
        self.report.dropped(self.table, reason, n)
        # a real copy, so later in-place fixes never touch a view of the previous frame
        return frame.loc[~mask].copy()

    def fixed(self, reason: str, n: int) -> None:
        self.report.fixed(self.table, reason, n)


RuleFn = Callable[[pd.DataFrame, RuleContext], pd.DataFrame]


@dataclass(frozen=True)
class Rule:
    name: str
    tables: tuple[str, ...]
    reasons: tuple[str, ...]  # every reason the rule may count, for docs and dashboards
    apply: RuleFn


# --- every table ---------------------------------------------------------------------------


def _blank_key(key: pd.Series) -> pd.Series:
    # an empty key cannot be joined on nor deduplicated, so it is as bad as a null one
    return key.astype("string").str.strip().eq("").fillna(True).astype(bool)


def drop_superseded_versions(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    # Runs before the required-column check on purpose: the latest version is the truth, and
    # if it is broken the entity is dropped (missing_required) rather than silently replaced
    # by a stale version. Blank keys are not versions of anything: left to missing_required.
    pk, updated = ctx.contract.primary_key, ctx.contract.updated_at
    repeated = frame[pk].duplicated(keep=False)
    if not repeated.any():
        return frame
    versions = frame.loc[repeated, [pk, updated]]
    versions = versions[~_blank_key(versions[pk])]
    # stable sort, undated versions first: on equal updated_at the row read later wins
    versions = versions.sort_values([pk, updated], kind="mergesort", na_position="first")
    losers = versions.index[versions[pk].duplicated(keep="last")]
    return ctx.drop(frame, frame.index.isin(losers), "superseded_version")


def drop_missing_required(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    contract = ctx.contract
    missing = frame[contract.required_columns].isna().any(axis=1)
    missing |= _blank_key(frame[contract.primary_key])
    return ctx.drop(frame, missing, "missing_required")


# --- items ---------------------------------------------------------------------------------


def fix_invalid_price(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    price = frame["price"].astype(float)
    bad = price.notna() & ~(np.isfinite(price) & (price > 0))
    if bad.any():
        frame.loc[bad, "price"] = np.nan  # .loc keeps the column's dtype (float64 or Float64)
        ctx.fixed("invalid_price", int(bad.sum()))
    return frame


def handle_price_outliers(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    cfg = ctx.config.price
    # the flag is sticky: a price clipped (or flagged) by an earlier run stays flagged even
    # though it is now inside the fences, so cleaning a cleaned frame is a no-op
    flag = (
        frame[PRICE_OUTLIER].fillna(False).astype(bool)
        if PRICE_OUTLIER in frame.columns
        else pd.Series(False, index=frame.index)
    )
    frame[PRICE_OUTLIER] = flag
    price, category = frame["price"].astype(float), frame["category"]
    if cfg.action == "drop":
        return ctx.drop(frame, outliers.drop_mask(price, category, cfg), "price_outlier_dropped")
    found = outliers.detect(price, category, cfg)
    if cfg.action == "clip":
        frame.loc[found.low, "price"] = found.low_price[found.low]
        frame.loc[found.high, "price"] = found.high_price[found.high]
        ctx.fixed("price_outlier_clipped", int(found.any.sum()))
    else:
        ctx.fixed("price_outlier_flagged", int((found.any & ~flag).sum()))
    frame[PRICE_OUTLIER] = flag | found.any
    return frame


# --- orders --------------------------------------------------------------------------------


def drop_invalid_amount(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    amount = frame["amount"].astype(float)
    bad = ~np.isfinite(amount) | (amount < 0) | (frame["quantity"].astype(float) <= 0)
    return ctx.drop(frame, bad, "invalid_amount")


# --- events --------------------------------------------------------------------------------


def drop_unknown_event_type(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    return ctx.drop(frame, ~frame["event_type"].isin(EVENT_TYPES), "unknown_event_type")


def drop_unknown_user(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    return _drop_orphans(frame, ctx, "users", "user_id", "unknown_user")


def drop_unknown_item(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    return _drop_orphans(frame, ctx, "items", "item_id", "unknown_item")


def _drop_orphans(frame: pd.DataFrame, ctx: RuleContext, parent: str, key: str, reason: str) -> pd.DataFrame:
    if parent not in ctx.parents:
        return frame  # the parent table was not part of this run: nothing to check against
    return ctx.drop(frame, ~frame[key].isin(ctx.parents[parent][key]), reason)


def normalize_timezone(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    offset = pd.to_numeric(frame["ts_offset_minutes"])
    local = offset.notna() & (offset != 0)
    if local.any():
        # ts_local = ts_utc + offset, so subtracting the offset gives UTC back
        frame.loc[local, "ts"] = frame.loc[local, "ts"] - pd.to_timedelta(offset[local], unit="min")
        frame.loc[local, "ts_offset_minutes"] = 0
        ctx.fixed("timezone_normalized", int(local.sum()))
    return frame


def handle_future_timestamps(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    cfg = ctx.config.timestamps
    col = ctx.contract.partition_column  # events.ts, orders.created_at
    limit = ctx.now + pd.Timedelta(seconds=cfg.future_tolerance_seconds)
    future = frame[col] > limit
    if cfg.future_action == "drop":
        return ctx.drop(frame, future, "future_timestamp_dropped")
    if future.any():
        # the ingest time is the best guess we have, unless it is itself in the future
        ingest = frame.loc[future, ctx.contract.updated_at].clip(upper=ctx.now)
        frame.loc[future, col] = ingest
        ctx.fixed("future_timestamp_clamped", int(future.sum()))
    return frame


def fix_out_of_order(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    if not ctx.config.timestamps.fix_out_of_order:
        return frame
    in_request = frame["request_id"].notna()  # without a request there is no funnel to order
    if not in_request.any():
        return frame
    sub = frame.loc[in_request, ["request_id", "item_id", "event_type", "ts"]]
    group = sub.groupby(["request_id", "item_id"], sort=False).ngroup()
    ts, moved = enforce_funnel_order(sub["ts"], sub["event_type"].map(FUNNEL_RANK), group)
    if moved.any():
        frame.loc[moved[moved].index, "ts"] = ts[moved]
        ctx.fixed("out_of_order_fixed", int(moved.sum()))
    return frame


DUPLICATE_COLUMNS = ["user_id", "item_id", "event_type", "ts", "request_id", "position", "value"]


def drop_exact_duplicates(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    # rows are in event_id order, so keep="first" keeps the smallest event_id
    dup = frame.duplicated(subset=DUPLICATE_COLUMNS, keep="first")
    return ctx.drop(frame, dup, "exact_duplicate")


def drop_near_duplicates(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    # An impression is one exposure in one slot of one response: the same item shown in two
    # requests, or twice in one response, is two exposures (negatives for training), so
    # impressions only collapse within the same (request_id, position). Other event types are
    # user actions whose double-fires cross requests (e.g. a retried click), so they key on
    # (user, item, type) alone.
    impression = frame["event_type"] == "impression"
    columns = [
        frame["user_id"],
        frame["item_id"],
        frame["event_type"],
        frame["request_id"].where(impression),
        frame["position"].where(impression),
    ]
    # use_na_sentinel=False: a missing request/position is one key value, not "no key"
    group = combine_codes([pd.factorize(col, use_na_sentinel=False)[0] for col in columns])
    window_ns = round(ctx.config.duplicates.near_window_seconds * 1e9)
    # rows are in event_id order, so on equal ts the smallest event_id is kept
    dup = near_duplicate_mask(group, to_ns(frame["ts"]), window_ns)
    return ctx.drop(frame, dup, "near_duplicate")


ALL_TABLES: tuple[str, ...] = tuple(CONTRACTS)
FACTS: tuple[str, ...] = ("orders", "events")

RULES: list[Rule] = [
    Rule("superseded_version", ALL_TABLES, ("superseded_version",), drop_superseded_versions),
    Rule("missing_required", ALL_TABLES, ("missing_required",), drop_missing_required),
    Rule("invalid_price", ("items",), ("invalid_price",), fix_invalid_price),
    Rule(
        "price_outlier",
        ("items",),
        ("price_outlier_flagged", "price_outlier_clipped", "price_outlier_dropped"),
        handle_price_outliers,
    ),
    Rule("invalid_amount", ("orders",), ("invalid_amount",), drop_invalid_amount),
    Rule("unknown_event_type", ("events",), ("unknown_event_type",), drop_unknown_event_type),
    Rule("unknown_user", FACTS, ("unknown_user",), drop_unknown_user),
    Rule("unknown_item", FACTS, ("unknown_item",), drop_unknown_item),
    Rule("timezone", ("events",), ("timezone_normalized",), normalize_timezone),
    Rule(
        "future_timestamp",
        FACTS,
        ("future_timestamp_clamped", "future_timestamp_dropped"),
        handle_future_timestamps,
    ),
    # after the timestamp fixes (they change ts) and before deduplication, whose result moving
    # a timestamp afterwards could invalidate; dropping rows never breaks the funnel order
    Rule("out_of_order", ("events",), ("out_of_order_fixed",), fix_out_of_order),
    Rule("exact_duplicate", ("events",), ("exact_duplicate",), drop_exact_duplicates),
    Rule("near_duplicate", ("events",), ("near_duplicate",), drop_near_duplicates),
]

REASONS: tuple[str, ...] = tuple(reason for rule in RULES for reason in rule.reasons)
