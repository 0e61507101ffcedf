"""Settings of the ranking chain (``chain:`` in config/recsys.yaml), saved into every bundle.

The train step writes them to ``<bundle>/chain.json``; the transformer and ``recsys recommend``
read them from there, so that a bundle is served the way it was evaluated.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

CHAIN_FILE = "chain.json"


class ChainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidates: int = Field(300, ge=10, le=2000, description="fused recall candidates the ranker scores")
    history_size: int = Field(50, ge=1, description="a user's newest positives that recall starts from")
    category_cap: int = Field(
        0,
        ge=0,
        description="at most this many items of one category in a list (0: no cap); the capped "
        "ones fill the list when too few others are left",
    )

    def save(self, bundle: Path) -> None:
        (bundle / CHAIN_FILE).write_text(self.model_dump_json(indent=1) + "\n")

    @classmethod
    def load(cls, bundle: Path) -> ChainConfig:
        path = bundle / CHAIN_FILE
        return cls.model_validate(json.loads(path.read_text())) if path.exists() else cls()
