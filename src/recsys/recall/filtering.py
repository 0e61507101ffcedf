"""What recall must never return: inactive items and items the user already bought."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recsys.recall.data import RecallData


@dataclass
class ExclusionFilter:
    inactive: set[str] = field(default_factory=set)
    purchased: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def from_data(
        cls, data: RecallData, *, exclude_purchased: bool = True, exclude_inactive: bool = True
    ) -> ExclusionFilter:
        inactive = set(data.items.loc[~data.active_mask, "item_id"]) if exclude_inactive else set()
        purchased: dict[str, set[str]] = {}
        if exclude_purchased:
            for user, item in zip(data.purchases["user_id"], data.purchases["item_id"], strict=True):
                purchased.setdefault(str(user), set()).add(str(item))
        return cls(inactive, purchased)

    def exclude_for(self, user_id: str, extra: set[str] | None = None) -> set[str]:
        """Items ``user_id`` already bought, plus ``extra``: small, so channels can skip them.

        Inactive items are not merged in: that set can be catalogue-sized, channels never
        publish them (their fit masks inactive targets), and ``RecallEngine.drop_inactive``
        catches the rest.
        """
        return self.purchased.get(user_id, set()) | (extra or set())

    def allowed(self, user_id: str, item_id: str) -> bool:
        return item_id not in self.inactive and item_id not in self.purchased.get(user_id, ())

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"item_id": sorted(self.inactive)}, dtype=object).to_parquet(
            directory / "inactive.parquet", index=False
        )
        pairs = [(u, i) for u, items in sorted(self.purchased.items()) for i in sorted(items)]
        pd.DataFrame(pairs, columns=["user_id", "item_id"], dtype=object).to_parquet(
            directory / "purchased.parquet", index=False
        )

    @classmethod
    def load(cls, directory: Path) -> ExclusionFilter:
        inactive = set(pd.read_parquet(directory / "inactive.parquet")["item_id"].astype(str))
        purchased: dict[str, set[str]] = {}
        frame = pd.read_parquet(directory / "purchased.parquet")
        for user, item in zip(frame["user_id"].astype(str), frame["item_id"].astype(str), strict=True):
            purchased.setdefault(user, set()).add(item)
        return cls(inactive, purchased)
