"""What the cleaner did, counted per table and reason, for logs, metrics and MLflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _empty_table() -> dict[str, Any]:
    return {"input": 0, "kept": 0, "fixed": {}, "dropped": {}}


@dataclass
class CleaningReport:
    """Per table: ``{"input": n, "kept": n, "fixed": {reason: n}, "dropped": {reason: n}}``.

    ``fixed`` counts operations, not rows: a row fixed by two rules is counted under both
    reasons but once in ``kept``. Reasons with a zero count are not listed, so a clean input
    gives empty ``fixed``/``dropped`` mappings. ``input == kept + sum(dropped)`` always holds.
    """

    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _table(self, table: str) -> dict[str, Any]:
        return self.tables.setdefault(table, _empty_table())

    def start(self, table: str, n_input: int) -> None:
        self._table(table)["input"] = int(n_input)

    def finish(self, table: str, n_kept: int) -> None:
        self._table(table)["kept"] = int(n_kept)

    def fixed(self, table: str, reason: str, n: int) -> None:
        self._add(table, "fixed", reason, n)

    def dropped(self, table: str, reason: str, n: int) -> None:
        self._add(table, "dropped", reason, n)

    def _add(self, table: str, kind: str, reason: str, n: int) -> None:
        n = int(n)
        if n < 0:
            raise ValueError(f"{table}: negative count {n} for {kind} reason {reason!r}")
        if n == 0:
            return
        counts = self._table(table)[kind]
        counts[reason] = counts.get(reason, 0) + n

    def n_fixed(self, table: str | None = None) -> int:
        return self._sum("fixed", table)

    def n_dropped(self, table: str | None = None) -> int:
        return self._sum("dropped", table)

    def _sum(self, kind: str, table: str | None) -> int:
        names = self.tables if table is None else [table]
        return sum(sum(self.tables[t][kind].values()) for t in names if t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy (reasons sorted for stable diffs) plus ``totals``."""
        tables = {
            name: {
                "input": t["input"],
                "kept": t["kept"],
                "fixed": dict(sorted(t["fixed"].items())),
                "dropped": dict(sorted(t["dropped"].items())),
            }
            for name, t in self.tables.items()
        }
        totals = {
            "input": sum(t["input"] for t in self.tables.values()),
            "kept": sum(t["kept"] for t in self.tables.values()),
            "fixed": self.n_fixed(),
            "dropped": self.n_dropped(),
        }
        return {"tables": tables, "totals": totals}
