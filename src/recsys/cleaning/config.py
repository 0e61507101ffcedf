"""Configuration of the cleaning rules (``cleaning:`` in config/recsys.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PriceOutlierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["iqr", "zscore"] = "iqr"
    action: Literal["flag", "clip", "drop"] = "clip"
    iqr_k: float = Field(3.0, gt=0, description="fence = Q1/Q3 -/+ k * IQR on log price")
    z_threshold: float = Field(3.5, gt=0, description="|z| above this on log price is an outlier")
    per_category: bool = True
    min_group_size: int = Field(20, ge=3, description="smaller categories use global bounds")


class TimestampConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    future_tolerance_seconds: int = Field(300, ge=0)
    future_action: Literal["clamp", "drop"] = "clamp"
    fix_out_of_order: bool = True


class DuplicateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    near_window_seconds: float = Field(2.0, ge=0, description="same user/item/type within this")


class CleaningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price: PriceOutlierConfig = PriceOutlierConfig()
    timestamps: TimestampConfig = TimestampConfig()
    duplicates: DuplicateConfig = DuplicateConfig()
