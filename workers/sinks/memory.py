"""A sink in process memory: the executable definition of what applying mutations means.

Property tests fold millions of events through it, and the Redis and PostgreSQL sinks
must end with the same `Snapshot` for the same batches (tests/integration/sinks).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from workers.projection.model import (
    CUSTOMER_COUNTERS,
    DAILY_COUNTERS,
    ORDER_PLACED,
    ORDER_RESERVATION_EXPIRED,
    Mutations,
)
from workers.sinks.base import ApplyResult, PositionedMutations, merged, pending
from workers.verify.snapshot import Snapshot, norm


class MemorySink:
    name = "memory"

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}
        self.reservations: dict[str, tuple] = {}  # type: ignore[type-arg]
        self.orders: dict[str, dict] = {}  # type: ignore[type-arg]
        self.order_items: dict[tuple[str, str], tuple] = {}  # type: ignore[type-arg]
        self.customers: dict[str, dict] = {}  # type: ignore[type-arg]
        self.daily: dict[tuple, dict] = {}  # type: ignore[type-arg]
        self.checkpoints: dict[tuple[str, int], int] = {}

    async def positions(self, topic: str) -> dict[int, int]:
        return {p: o for (t, p), o in self.checkpoints.items() if t == topic}

    async def apply(self, topic: str, batch: Sequence[PositionedMutations]) -> ApplyResult:
        todo, advanced = pending(batch, await self.positions(topic))
        self.write(merged(todo))
        for partition, next_offset in advanced.items():
            self.checkpoints[(topic, partition)] = next_offset
        return ApplyResult(applied=len(todo), skipped=len(batch) - len(todo))

    def write(self, m: Mutations) -> None:
        for seat_id, record in m.seats.items():
            self.hashes[f"seat:{seat_id}"] = record.hash_fields()
        for (event, seat_id), status in m.seatmap_set.items():
            self.hashes.setdefault(f"seatmap:{event}", {})[seat_id] = status
        for event, seat_id in m.seatmap_del:
            seatmap = self.hashes.get(f"seatmap:{event}", {})
            seatmap.pop(seat_id, None)
            if not seatmap:
                self.hashes.pop(f"seatmap:{event}", None)
        for event, name in m.availability_fields:
            self.hashes.setdefault(f"availability:{event}", {}).setdefault(name, "0")
        for (event, name), delta in m.availability.items():
            fields = self.hashes.setdefault(f"availability:{event}", {})
            fields[name] = str(int(fields.get(name, "0")) + delta)

        for reservation_id, row in m.reservations.items():
            self.reservations[reservation_id] = (
                row.seat_id, row.concert_event_id, row.customer_id, row.section,
                row.seat_number, row.base_price, row.status, row.created_at,
                row.expires_at, row.expired_at, row.order_id,
            )  # fmt: skip
        for (order_id, seat_id), item in m.order_items.items():
            self.order_items[(order_id, seat_id)] = (item.reservation_id, item.price, item.status)
        for order_id, header in m.order_headers.items():
            order = self.orders.get(order_id)
            if order is None:
                self.orders[order_id] = {"header": header, "expired_items": 0}
            elif header.rank() < order["header"].rank():
                order["header"] = header
        for order_id, delta in m.order_expired_items.items():
            self.orders[order_id]["expired_items"] += delta
        for (customer_id, counter), delta in m.customer.items():
            self._customer(customer_id)[counter] += delta
        for customer_id, seen in m.customer_seen.items():
            row = self._customer(customer_id)
            if row["last_activity_at"] is None or seen > row["last_activity_at"]:
                row["last_activity_at"] = seen
        for (event, section, day, counter), delta in m.daily.items():
            key = (event, section, day)
            row = self.daily.setdefault(key, dict.fromkeys(DAILY_COUNTERS, 0))
            row[counter] += delta
            if not any(row.values()):
                del self.daily[key]

    def _customer(self, customer_id: str) -> dict:  # type: ignore[type-arg]
        row = self.customers.get(customer_id)
        if row is None:
            row = self.customers[customer_id] = dict.fromkeys(CUSTOMER_COUNTERS, 0)
            row["total_spent"] = Decimal(0)
            row["last_activity_at"] = None
        return row

    def snapshot(self) -> Snapshot:
        snap = Snapshot(hashes={key: dict(fields) for key, fields in self.hashes.items()})
        t = snap.tables
        t["reservations"] = {
            (k,): tuple(norm(v) for v in row) for k, row in self.reservations.items()
        }
        t["order_items"] = {k: tuple(norm(v) for v in row) for k, row in self.order_items.items()}
        for order_id, order in self.orders.items():
            h = order["header"]
            state = ORDER_RESERVATION_EXPIRED if order["expired_items"] > 0 else ORDER_PLACED
            t["orders"][(order_id,)] = (
                h.customer_id, state, h.item_count, norm(h.total_amount), h.currency, h.placed_at,
            )  # fmt: skip
        for customer_id, row in self.customers.items():
            t["customer_activity"][(customer_id,)] = tuple(
                norm(row[c]) for c in (*CUSTOMER_COUNTERS, "last_activity_at")
            )
        for key, row in self.daily.items():
            t["event_sales_daily"][key] = tuple(norm(row[c]) for c in DAILY_COUNTERS)
        return snap
