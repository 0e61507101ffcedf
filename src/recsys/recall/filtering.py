"""What recall must never return: inactive items, and items the user has already seen.

*Seen* is a policy per event type (``filter.exclude_seen`` in config/recall.yaml): by default
nothing a user bought, added to a cart, clicked or rated is recommended to them again, while a
plain view is. The policy is applied to the user's whole past (no cap), identically offline and
online: the train step writes each user's seen set into the bundle, the sync step publishes it
to the online store, and every caller of the ranking chain excludes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recsys.recall.data import RecallData


class SeenPolicy(BaseModel):
    """Which past interactions keep an item out of a user's lists."""

    model_config = ConfigDict(extra="forbid")

    purchase: bool = Field(True, description="bought (purchase events and paid orders)")
    add_to_cart: bool = Field(True, description="added to a cart")
    click: bool = Field(True, description="clicked")
    rating: bool = Field(
        True, description="rated: a view carrying a value, as the MovieLens and CSV importers store ratings"
    )
    view: bool = Field(False, description="viewed (any view, rated or not); off: views are re-recommendable")

    def excludes(self, events: pd.DataFrame) -> np.ndarray:
        """Which rows of ``events`` (event_type, value) make their item seen for their user."""
        kind = events["event_type"].astype(str).to_numpy()
        out = np.zeros(len(events), bool)
        for event_type in ("purchase", "add_to_cart", "click", "view"):
            if getattr(self, event_type):
                out |= kind == event_type
        if self.rating and "value" in events:
            out |= (kind == "view") & events["value"].notna().to_numpy()
        return out

    def describe(self) -> str:
        """The policy in words, for help texts and reports: 'bought, added to a cart, ...'."""
        words = {"purchase": "bought", "add_to_cart": "added to a cart", "click": "clicked",
                 "rating": "rated", "view": "viewed"}  # fmt: skip
        chosen = [w for name, w in words.items() if getattr(self, name)]
        if not chosen:
            return "nothing (every item may be recommended again)"
        return ", ".join(chosen[:-1]) + (" or " if len(chosen) > 1 else "") + chosen[-1]


@dataclass
class ExclusionFilter:
    """The catalogue-wide part of the filter: items that are not active."""

    inactive: set[str] = field(default_factory=set)

    @classmethod
    def from_data(cls, data: RecallData, *, exclude_inactive: bool = True) -> ExclusionFilter:
        return cls(set(data.items.loc[~data.active_mask, "item_id"]) if exclude_inactive else set())

    def allowed(self, item_id: str) -> bool:
        return item_id not in self.inactive

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"item_id": sorted(self.inactive)}, dtype=object).to_parquet(
            directory / "inactive.parquet", index=False
        )

    @classmethod
    def load(cls, directory: Path) -> ExclusionFilter:
        return cls(set(pd.read_parquet(directory / "inactive.parquet")["item_id"].astype(str)))
