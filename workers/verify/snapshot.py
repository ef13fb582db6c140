"""A canonical, comparable picture of the read models' content.

Every sink can produce one (`snapshot()`), and so can the reference fold; tests, the
fault-injection checker and `seatflow verify` compare them. Values are normalised so that
equal content compares equal whatever store it came from: ids and text as `str`, money as
`Decimal` with trailing zeros stripped (`money`), times as aware UTC `datetime`, days as
`date`; `projected_at` is left out (it is the only wall-clock value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Row = tuple[Any, ...]

PG_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # table: (key columns, value columns), in the order rows are compared
    "reservations": (
        ("reservation_id",),
        ("seat_id", "concert_event_id", "customer_id", "section", "seat_number", "base_price",
         "status", "created_at", "expires_at", "expired_at", "order_id"),
    ),
    "orders": (
        ("order_id",),
        ("customer_id", "state", "item_count", "total_amount", "currency", "placed_at"),
    ),
    "order_items": (("order_id", "seat_id"), ("reservation_id", "price", "status")),
    "customer_activity": (
        ("customer_id",),
        ("reservations", "active_holds", "expirations", "orders", "total_spent",
         "last_activity_at"),
    ),
    "event_sales_daily": (
        ("concert_event_id", "section", "day"),
        ("reservations", "expirations", "seats_ordered", "revenue"),
    ),
}  # fmt: skip


def money(value: Decimal) -> Decimal:
    """Money compared by value: 12.5, 12.50 and 12.500 are one amount."""
    normalized = value.normalize()
    return normalized.quantize(Decimal(1)) if normalized == normalized.to_integral() else normalized


def norm(value: Any) -> Any:
    if isinstance(value, Decimal):
        return money(value)
    if hasattr(value, "hex") and type(value).__name__ == "UUID":
        return str(value)
    return value


@dataclass
class Snapshot:
    """Postgres tables (key -> values) and Redis hashes (key without prefix -> fields)."""

    tables: dict[str, dict[Row, Row]] = field(default_factory=lambda: {t: {} for t in PG_TABLES})
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)

    def differences(self, other: Snapshot, limit: int = 20) -> list[str]:
        """Human-readable differences, first `limit` of them (empty when equal)."""
        out: list[str] = []
        for table in PG_TABLES:
            mine, theirs = self.tables.get(table, {}), other.tables.get(table, {})
            for key in sorted(set(mine) | set(theirs), key=repr):
                if mine.get(key) != theirs.get(key):
                    out.append(f"{table}{key}: {mine.get(key)} != {theirs.get(key)}")
                    if len(out) >= limit:
                        return out
        for key in sorted(set(self.hashes) | set(other.hashes)):
            if self.hashes.get(key) != other.hashes.get(key):
                out.append(f"redis {key}: {self.hashes.get(key)} != {other.hashes.get(key)}")
                if len(out) >= limit:
                    return out
        return out
