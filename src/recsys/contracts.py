"""Data contracts: the source (OLTP) tables the system reads, defined once.

Every table has a primary key, an ``updated_at`` column that the CDC extractor uses as its
watermark, and a *partition column* whose value never changes for a row (creation or event
time), so that an updated row lands in the same date partition as its first version.

All timestamps are naive UTC. Events may carry ``ts_offset_minutes`` when a client recorded
local time (the cleaner converts them to UTC).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

metadata = sa.MetaData()

EVENT_TYPES: tuple[str, ...] = ("impression", "view", "click", "add_to_cart", "purchase")
ITEM_STATUSES: tuple[str, ...] = ("active", "inactive")
ORDER_STATUSES: tuple[str, ...] = ("paid", "refunded", "cancelled")

users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("industry", sa.String(64), nullable=True, comment="buyer's industry"),
    sa.Column("region", sa.String(64), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False, index=True),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("item_id", sa.String(64), primary_key=True),
    sa.Column("title", sa.String(256), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("industry", sa.String(64), nullable=True),
    sa.Column("tags", sa.Text(), nullable=True, comment="'|'-separated tags"),
    sa.Column("price", sa.Float(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False, index=True),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("order_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("item_id", sa.String(64), nullable=False),
    sa.Column("quantity", sa.Integer(), nullable=False),
    sa.Column("amount", sa.Float(), nullable=False, comment="GMV of the order line"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False, index=True),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("item_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(16), nullable=False),
    sa.Column("ts", sa.DateTime(), nullable=False),
    sa.Column("ts_offset_minutes", sa.Integer(), nullable=True, comment="local time offset"),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("position", sa.Integer(), nullable=True),
    sa.Column("value", sa.Float(), nullable=True, comment="GMV for purchases, rating, ..."),
    sa.Column("scene", sa.String(32), nullable=True),
    sa.Column("source", sa.String(16), nullable=False, server_default="app"),
    sa.Column("updated_at", sa.DateTime(), nullable=False, index=True),
)


@dataclass(frozen=True)
class TableContract:
    """How the offline pipeline treats one source table."""

    table: sa.Table
    primary_key: str
    partition_column: str
    updated_at: str = "updated_at"

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.table.columns]

    @property
    def datetime_columns(self) -> list[str]:
        return [c.name for c in self.table.columns if isinstance(c.type, sa.DateTime)]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.table.columns if not c.nullable]


CONTRACTS: dict[str, TableContract] = {
    "users": TableContract(users, "user_id", "created_at"),
    "items": TableContract(items, "item_id", "created_at"),
    "orders": TableContract(orders, "order_id", "created_at"),
    "events": TableContract(events, "event_id", "ts"),
}

TABLE_NAMES: tuple[str, ...] = tuple(CONTRACTS)
