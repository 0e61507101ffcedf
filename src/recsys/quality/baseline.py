"""Column profiles, the PSI and the baseline a quality run leaves for the next one.

A numeric column is profiled as a histogram over its own quantile bin edges; the next run
bins its values on those edges, so the baseline's bins hold equal shares and the PSI is
sensitive across the whole distribution rather than only where the mass used to be. A
categorical column is profiled as category shares (the rarest folded into ``__other__``).
Nulls are left out of both: the ``null_rate`` check is the one that watches them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from recsys.errors import InvalidInput

Kind = Literal["numeric", "categorical"]
OTHER = "__other__"
# stands in for an empty bin: the PSI of a share that went to or came from zero is finite but large
EPSILON = 1e-4
FORMAT_VERSION = 1


def column_kind(series: pd.Series) -> Kind | None:
    """How a column is profiled; ``None`` for datetimes, whose drift is only the passing of time."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype) or isinstance(series.dtype, pd.PeriodDtype):
        return None
    if pd.api.types.is_bool_dtype(series.dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "numeric"
    return "categorical"


def numeric_values(series: pd.Series) -> np.ndarray:
    """Finite float values (nullable integer columns included), nulls and infinities dropped."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return values[np.isfinite(values)]


def quantile_edges(values: np.ndarray, bins: int) -> list[float]:
    if values.size == 0:
        return []
    return [float(v) for v in np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))]


def _cuts(edges: Sequence[float]) -> list[float]:
    # the outer bins are open so that values outside the baseline's range still land somewhere;
    # with one or two distinct edges, each value keeps its own bin (a 0/1 column has two bins)
    if len(edges) >= 3:
        return list(edges[1:-1])
    if len(edges) == 2:
        return list(edges[1:])
    return list(edges)


def bin_labels(edges: Sequence[float]) -> list[str]:
    cuts = _cuts(edges)
    if not cuts:
        return ["all"]
    inner = [f"[{a:.4g}, {b:.4g})" for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    return [f"< {cuts[0]:.4g}", *inner, f">= {cuts[-1]:.4g}"]


def bin_shares(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    """Share of ``values`` per bin of ``edges`` (bins are ``[a, b)``, the outer ones open)."""
    cuts = np.asarray(_cuts(edges), dtype="float64")
    counts = np.bincount(np.searchsorted(cuts, values, side="right"), minlength=cuts.size + 1)
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def category_shares(series: pd.Series) -> dict[str, float]:
    return {str(k): float(v) for k, v in series.dropna().astype(str).value_counts(normalize=True).items()}


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index: sum over bins of ``(a - e) * ln(a / e)``."""
    if len(expected) != len(actual):
        raise ValueError(f"psi: {len(expected)} expected shares vs {len(actual)} actual shares")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True)
class ColumnProfile:
    """Histogram (numeric: ``edges`` + ``shares``) or ``categories`` shares of one column."""

    kind: Kind
    count: int
    edges: list[float] = field(default_factory=list)
    shares: list[float] = field(default_factory=list)
    categories: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "numeric":
            return {"kind": self.kind, "count": self.count, "edges": self.edges, "shares": self.shares}
        return {"kind": self.kind, "count": self.count, "categories": self.categories}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ColumnProfile:
        return cls(
            kind=raw["kind"],
            count=int(raw["count"]),
            edges=[float(v) for v in raw.get("edges", [])],
            shares=[float(v) for v in raw.get("shares", [])],
            categories={str(k): float(v) for k, v in raw.get("categories", {}).items()},
        )


def profile_column(series: pd.Series, kind: Kind, bins: int, max_categories: int) -> ColumnProfile:
    if kind == "numeric":
        values = numeric_values(series)
        edges = quantile_edges(values, bins)
        return ColumnProfile("numeric", int(values.size), edges=edges, shares=bin_shares(values, edges))
    shares = category_shares(series)
    if len(shares) > max_categories:
        # keep the distribution's head; a long tail of ids would make every run look drifted
        top = dict(list(shares.items())[: max_categories - 1])
        top[OTHER] = top.get(OTHER, 0.0) + max(0.0, 1.0 - sum(top.values()))
        shares = top
    return ColumnProfile("categorical", int(series.notna().sum()), categories=shares)


@dataclass(frozen=True)
class Comparison:
    psi: float
    labels: list[str]
    baseline: list[float]
    current: list[float]


def compare(base: ColumnProfile, series: pd.Series) -> Comparison:
    """The current ``series`` on the baseline's bins or categories."""
    if base.kind == "numeric":
        current = bin_shares(numeric_values(series), base.edges)
        return Comparison(psi(base.shares, current), bin_labels(base.edges), base.shares, current)
    now = category_shares(series)
    labels = list(base.categories)
    cur = {k: 0.0 for k in labels}
    for k, share in now.items():
        # a category the baseline did not keep counts as "other", which the baseline may lack
        key = k if k in cur else OTHER
        cur[key] = cur.get(key, 0.0) + share
    if OTHER in cur and OTHER not in labels:
        labels.append(OTHER)
    expected = [base.categories.get(k, 0.0) for k in labels]
    actual = [cur[k] for k in labels]
    return Comparison(psi(expected, actual), labels, expected, actual)


@dataclass
class TableProfile:
    rows: int
    columns: dict[str, ColumnProfile] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)  # non-null values per column


@dataclass
class Baseline:
    """Row counts and column profiles per table, saved by a passing run for the next run."""

    tables: dict[str, TableProfile] = field(default_factory=dict)
    created_at: datetime | None = None

    def rows(self, table: str) -> int | None:
        return self.tables[table].rows if table in self.tables else None

    def column(self, table: str, column: str) -> ColumnProfile | None:
        return self.tables[table].columns.get(column) if table in self.tables else None

    def filled(self, table: str, column: str) -> int | None:
        """Non-null values the column had in the baseline (None: not recorded)."""
        return self.tables[table].filled.get(column) if table in self.tables else None

    def updated(self, newer: Baseline) -> Baseline:
        """``newer``'s tables replace ours; tables it lacks are carried over unchanged."""
        return Baseline({**self.tables, **newer.tables}, newer.created_at or self.created_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "tables": {
                name: {
                    "rows": t.rows,
                    "columns": {c: p.to_dict() for c, p in sorted(t.columns.items())},
                    "filled": dict(sorted(t.filled.items())),
                }
                for name, t in sorted(self.tables.items())
            },
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Baseline:
        if raw.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported format {raw.get('format')!r} (expected {FORMAT_VERSION})")
        created = raw.get("created_at")
        tables = {
            name: TableProfile(
                int(t["rows"]),
                {c: ColumnProfile.from_dict(p) for c, p in t.get("columns", {}).items()},
                {str(c): int(n) for c, n in t.get("filled", {}).items()},
            )
            for name, t in raw["tables"].items()
        }
        return cls(tables, datetime.fromisoformat(created) if created else None)

    def save(self, path: Path) -> None:
        """Write atomically, so that a crash never leaves a half-written baseline behind."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Baseline:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError as e:
            raise InvalidInput(f"quality baseline {path} does not exist") from e
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InvalidInput(f"quality baseline {path} is corrupt: {e}") from e

    @classmethod
    def load_if_exists(cls, path: Path) -> Baseline | None:
        """``None`` on the first run (no file yet); a corrupt file is still an error."""
        return cls.load(path) if path.exists() else None
