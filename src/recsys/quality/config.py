"""Configuration of the data quality gate (``config/quality.yaml``).

A check entry is flat YAML: the common keys (``table``, ``type``, ``column``/``columns``,
``weight``, ``name``) plus the parameters of its type, which are validated against that
type's ``Params`` model in ``recsys.quality.checks.CHECKS``, so a typo in a parameter name
is an error instead of a silently ignored key.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, InstanceOf, ValidationError, model_validator

from recsys.errors import ConfigError

COMMON_KEYS = frozenset({"table", "type", "name", "column", "columns", "weight"})
ColumnMode = Literal["none", "one", "many"]


class CheckParams(BaseModel):
    """Base of the per-type parameter models; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class PsiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bins: int = Field(10, ge=2, le=100, description="quantile bins of a numeric histogram")
    warn: float = Field(0.1, gt=0, description="PSI at or above this is reported as a warning")
    fail: float = Field(0.25, gt=0, description="PSI at or above this fails the column")
    max_categories: int = Field(
        50, ge=2, description="categorical columns keep this many shares; the rest is '__other__'"
    )

    @model_validator(mode="after")
    def _ordered(self) -> PsiConfig:
        if self.warn > self.fail:
            raise ValueError(f"warn ({self.warn}) must not exceed fail ({self.fail})")
        return self


def default_check_name(table: Any, check_type: Any, column: Any = None, columns: Any = None) -> str:
    """``events.ts freshness``, ``events volume_change``, ``item_features.* drift``."""
    if column is not None:
        label = str(column)
    elif columns is not None:
        label = columns if isinstance(columns, str) else ",".join(str(c) for c in columns)
    else:
        return f"{table} {check_type}"
    return f"{table}.{label} {check_type}"


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err["ctx"]["error"]) if err["type"] == "value_error" and "ctx" in err else err["msg"]
    return f"{loc}: {msg}" if loc else msg


class CheckSpec(BaseModel):
    """One configured check. ``columns: "*"`` expands at run time (see the check type)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(min_length=1)
    type: str
    name: str = ""
    column: str | None = None
    columns: list[str] | Literal["*"] | None = None
    weight: float = Field(1.0, ge=0, description="0 = reported but not scored")
    params: InstanceOf[CheckParams]

    @model_validator(mode="before")
    @classmethod
    def _split_params(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "params" in data:
            return data
        # imported here because checks.py imports this module for the spec types
        from recsys.quality.checks import CHECKS

        check_type = data.get("type")
        if check_type is None:
            raise ValueError("'type' is required")
        if check_type not in CHECKS:
            close = difflib.get_close_matches(str(check_type), CHECKS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(CHECKS))}"
            raise ValueError(f"unknown type {check_type!r} ({hint})")
        check = CHECKS[check_type]
        common = {k: v for k, v in data.items() if k in COMMON_KEYS}
        try:
            common["params"] = check.Params.model_validate(
                {k: v for k, v in data.items() if k not in COMMON_KEYS}
            )
        except ValidationError as e:
            raise ValueError(_first_error(e)) from e
        _check_column_mode(check.column_mode, common.get("column"), common.get("columns"))
        if not common.get("name"):
            common["name"] = default_check_name(
                data.get("table"), check_type, common.get("column"), common.get("columns")
            )
        return common

    @property
    def column_label(self) -> str | None:
        if self.column is not None:
            return self.column
        if self.columns is None:
            return None
        return self.columns if isinstance(self.columns, str) else ",".join(self.columns)

    def to_dict(self) -> dict[str, Any]:
        """The flat YAML form of the entry."""
        out: dict[str, Any] = {"name": self.name, "table": self.table, "type": self.type}
        if self.column is not None:
            out["column"] = self.column
        if self.columns is not None:
            out["columns"] = self.columns
        out["weight"] = self.weight
        out.update(self.params.model_dump(exclude_none=True))
        return out


def _check_column_mode(mode: ColumnMode, column: Any, columns: Any) -> None:
    if column is not None and columns is not None:
        raise ValueError("give either 'column' or 'columns', not both")
    if mode == "none" and (column is not None or columns is not None):
        raise ValueError("this type checks a whole table and takes no 'column'/'columns'")
    if mode == "one" and column is None:
        raise ValueError("'column' is required (this type checks exactly one column)")
    if mode == "many" and column is None and columns is None:
        raise ValueError("'column' or 'columns' is required")
    if isinstance(columns, list) and not columns:
        raise ValueError("'columns' must not be empty")
    if isinstance(columns, list) and len(set(map(str, columns))) != len(columns):
        raise ValueError(f"'columns' lists a column twice: {columns}")


class QualityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(97.0, ge=0, le=100, description="score (0-100) below which the gate fails")
    psi: PsiConfig = PsiConfig()
    checks: list[CheckSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> QualityConfig:
        seen: dict[str, int] = {}
        for i, spec in enumerate(self.checks):
            if spec.name in seen:
                # names label the metrics, so two checks with one name would overwrite each other
                raise ValueError(
                    f"checks[{i}] ({spec.name}): duplicate check name (also checks[{seen[spec.name]}]); "
                    "set 'name' to tell them apart"
                )
            seen[spec.name] = i
        return self


def _entry_name(raw: Any) -> str:
    if not isinstance(raw, dict):
        return "not a mapping"
    if raw.get("name"):
        return str(raw["name"])
    return default_check_name(raw.get("table"), raw.get("type"), raw.get("column"), raw.get("columns"))


def parse_quality_config(data: Any, source: str = "quality config") -> QualityConfig:
    """Validate an already-parsed mapping; errors name ``source`` and the failing entry."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must hold a mapping at the top level")
    try:
        return QualityConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = list(err["loc"])
        msg = str(err["ctx"]["error"]) if err["type"] == "value_error" and "ctx" in err else err["msg"]
        raw_checks = data.get("checks")
        if len(loc) >= 2 and loc[0] == "checks" and isinstance(loc[1], int) and isinstance(raw_checks, list):
            i = loc[1]
            where = f"checks[{i}] ({_entry_name(raw_checks[i])})"
            rest = ".".join(str(p) for p in loc[2:])
            raise ConfigError(f"{source}: {where}: {rest + ': ' if rest else ''}{msg}") from e
        where = ".".join(str(p) for p in loc)
        raise ConfigError(f"{source}: {where + ': ' if where else ''}{msg}") from e


def load_quality_config(path: Path) -> QualityConfig:
    """Read and validate ``path`` (e.g. ``config/quality.yaml``)."""
    if not path.exists():
        raise ConfigError(f"{path}: quality config does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path.name}: not valid YAML: {e}") from e
    return parse_quality_config(data, source=path.name)
