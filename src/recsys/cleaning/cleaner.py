"""Clean the four source tables: apply ``rules.RULES`` table by table, count every change.

Tables are cleaned parents first (users, items, then orders and events), so the referential
rules of orders/events check against the *cleaned* users and items: an item dropped as a
price outlier (action ``drop``) or for a missing column orphans its events and orders, which
are then dropped as ``unknown_item``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd

from recsys.cleaning.config import CleaningConfig
from recsys.cleaning.report import CleaningReport
from recsys.cleaning.rules import PRICE_OUTLIER, RULES, RuleContext
from recsys.contracts import CONTRACTS
from recsys.errors import InvalidInput, PipelineError

CLEAN_ORDER: tuple[str, ...] = ("users", "items", "orders", "events")


def _as_naive_utc(now: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(now)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _prepare(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A private copy sorted by primary key with a unique RangeIndex.

    Sorting first makes the output independent of the input row order and lets rules break
    ties by primary key just by keeping the row order.
    """
    missing = [c for c in CONTRACTS[table].columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"{table}: frame lacks contract column(s) {', '.join(missing)}")
    pk = CONTRACTS[table].primary_key
    return frame.sort_values(pk, kind="mergesort").reset_index(drop=True)


def _finish(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    if table == "items":
        # part of the cleaned items schema whatever the action, so readers see one schema
        flag = frame[PRICE_OUTLIER] if PRICE_OUTLIER in frame.columns else False
        frame[PRICE_OUTLIER] = pd.Series(flag, index=frame.index).fillna(False).astype(bool)
    pk = CONTRACTS[table].primary_key
    if not frame[pk].is_monotonic_increasing:  # only if a rule broke the row-order contract
        frame = frame.sort_values(pk, kind="mergesort")
    return frame.reset_index(drop=True)


def clean_table(
    table: str,
    frame: pd.DataFrame,
    config: CleaningConfig,
    now: datetime,
    report: CleaningReport,
    parents: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Clean one table; ``parents`` are the already-cleaned tables its references point to."""
    out = _prepare(table, frame)
    report.start(table, len(out))
    ctx = RuleContext(table, config, _as_naive_utc(now), report, parents or {})
    for rule in RULES:
        if table in rule.tables:
            out = rule.apply(out, ctx)
    out = _finish(table, out)
    report.finish(table, len(out))
    # a rule that removes rows without counting them would make the report lie: fail loudly
    if report.tables[table]["input"] != len(out) + report.n_dropped(table):
        raise PipelineError(
            f"{table}: cleaning report does not add up (input {len(frame)}, kept {len(out)}, "
            f"dropped {report.n_dropped(table)})"
        )
    return out


def clean_tables(
    tables: Mapping[str, pd.DataFrame], config: CleaningConfig, now: datetime
) -> tuple[dict[str, pd.DataFrame], CleaningReport]:
    """Clean the given source tables; returns new frames sorted by primary key and the report.

    ``now`` is the run time (naive UTC); the library never reads the clock. The inputs are
    not modified. A table absent from ``tables`` is absent from the result, and references
    into it are not checked (there is nothing to check them against).
    """
    unknown = sorted(set(tables) - set(CLEAN_ORDER))
    if unknown:
        raise InvalidInput(f"unknown table(s) {', '.join(unknown)}; expected {CLEAN_ORDER}")
    report = CleaningReport()
    cleaned: dict[str, pd.DataFrame] = {}
    for table in CLEAN_ORDER:
        if table in tables:
            cleaned[table] = clean_table(table, tables[table], config, now, report, cleaned)
    return cleaned, report
