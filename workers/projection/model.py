"""Read-model rows and the mutations that change them (../shared/read-models.md).

Projections produce `Mutations`; sinks apply them. Three kinds of change, each with its
own merge rule, so that a batch of many events collapses into one write per key:

- absolute rows (a seat hash, a reservation row): the later value replaces the earlier;
- deltas (counters and money sums): they add up; applied exactly once thanks to the sinks'
  per-partition checkpoints;
- monotone values (a customer's last activity, an order's header): max / min, so that
  applying them again or in another order changes nothing.

Rows and facts are values: never changed once built, compared and hashed by content. They
are not `frozen` dataclasses only because a frozen one sets every field through
`object.__setattr__`, which makes building one about 3.5 times slower, and the seat state
machine builds the rows of a seat for every fact it applies (`seat.derive`); the same goes
for the facts (workers/projection/facts.py), built for every record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from workers.events import CanonicalId

# Redis availability fields and status values (the contract's vocabulary).
AVAILABLE, RESERVED, ORDERED = "available", "reserved", "ordered"
TOTAL = "total"
# Reservation status, order state and order item status.
RES_ACTIVE, RES_ORDERED, RES_EXPIRED = "active", "ordered", "expired"
ORDER_PLACED, ORDER_RESERVATION_EXPIRED = "placed", "reservation_expired"
ITEM_ACTIVE, ITEM_RESERVATION_EXPIRED = "active", "reservation_expired"
# Counter names of customer_activity and event_sales_daily.
CUSTOMER_COUNTERS = ("reservations", "active_holds", "expirations", "orders", "total_spent")
DAILY_COUNTERS = ("reservations", "expirations", "seats_ordered", "revenue")

Number = int | Decimal
AvailabilityKey = tuple[CanonicalId, str]  # (concert event, field)
CustomerKey = tuple[str, str]  # (customer, counter)
DailyKey = tuple[CanonicalId, str, date, str]  # (concert event, section, day, counter)
SeatmapKey = tuple[CanonicalId, CanonicalId]  # (concert event, seat)


@dataclass(slots=True, kw_only=True, unsafe_hash=True)  # immutable by convention, see above
class SeatRecord:
    """`sf:seat:{seatId}`; None fields are absent from the hash."""

    seat_id: CanonicalId
    status: str
    reservation_id: CanonicalId | None
    customer_id: str | None
    concert_event_id: CanonicalId | None
    section: str | None
    seat_number: str | None
    expires_at: datetime | None

    def hash_fields(self) -> dict[str, str]:
        items = self.hash_items()
        return dict(zip(items[::2], items[1::2], strict=True))

    def hash_items(self) -> list[str]:
        """The hash's fields and values in turn, as HSET takes them: what the Redis sink
        sends for every seat it writes (built directly, without the dict: a third of
        the cost)."""
        out = ["status", self.status]
        if self.reservation_id is not None:
            out += ("reservation_id", self.reservation_id)
        if self.customer_id is not None:
            out += ("customer_id", self.customer_id)
        if self.concert_event_id is not None:
            out += ("concert_event_id", self.concert_event_id)
        if self.section is not None:
            out += ("section", self.section)
        if self.seat_number is not None:
            out += ("seat_number", self.seat_number)
        if self.expires_at is not None:
            out += ("expires_at", utc_iso(self.expires_at))
        return out


@dataclass(slots=True, kw_only=True, unsafe_hash=True)  # immutable by convention, see above
class ReservationRow:
    reservation_id: CanonicalId
    seat_id: CanonicalId
    concert_event_id: CanonicalId | None
    customer_id: str
    section: str | None
    seat_number: str
    base_price: Decimal
    status: str
    created_at: datetime
    expires_at: datetime
    expired_at: datetime | None
    order_id: CanonicalId | None


@dataclass(slots=True, kw_only=True, unsafe_hash=True)  # immutable by convention, see above
class OrderItemRow:
    order_id: CanonicalId
    seat_id: CanonicalId
    reservation_id: CanonicalId
    price: Decimal
    status: str


@dataclass(slots=True, kw_only=True, unsafe_hash=True)  # immutable by convention, see above
class OrderHeader:
    """The order-level columns, as the order-placed event states them.

    Every seat of an order can write it; when two messages disagree about one order, the
    one with the smallest (placed_at, message_id) wins everywhere, whatever the order of
    arrival.
    """

    order_id: CanonicalId
    message_id: CanonicalId
    customer_id: str
    item_count: int
    total_amount: Decimal
    currency: str
    placed_at: datetime

    def rank(self) -> tuple[datetime, str]:
        return (self.placed_at, self.message_id)


def utc_iso(value: datetime) -> str:
    """ISO 8601 in UTC with a 'Z', microseconds always written: one spelling per instant.

    The spelling of `strftime("%Y-%m-%dT%H:%M:%S.%fZ")`, built from `isoformat` (a third of
    its cost; every seat hash written has one): after `astimezone(UTC)` the offset is
    always "+00:00". Years below 1000, which `%Y` does not pad, keep `strftime`.
    """
    utc = value.astimezone(UTC)
    if utc.year < 1000:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def add_deltas(into: dict, deltas: dict) -> None:  # type: ignore[type-arg]
    for key, value in deltas.items():
        total = into.get(key, 0) + value
        if total:
            into[key] = total
        else:
            into.pop(key, None)


@dataclass(slots=True)
class Mutations:
    """Changes to the read models; `merge` folds a later batch into an earlier one."""

    seats: dict[CanonicalId, SeatRecord] = field(default_factory=dict)
    seatmap_set: dict[SeatmapKey, str] = field(default_factory=dict)
    seatmap_del: set[SeatmapKey] = field(default_factory=set)
    availability: dict[AvailabilityKey, int] = field(default_factory=dict)
    availability_fields: set[AvailabilityKey] = field(default_factory=set)
    """Fields that must exist (as "0" if nothing counts there), so that which fields an
    availability hash has depends on the catalog alone, not on the order of events."""
    reservations: dict[CanonicalId, ReservationRow] = field(default_factory=dict)
    order_items: dict[tuple[CanonicalId, CanonicalId], OrderItemRow] = field(default_factory=dict)
    order_headers: dict[CanonicalId, OrderHeader] = field(default_factory=dict)
    order_expired_items: dict[CanonicalId, int] = field(default_factory=dict)
    customer: dict[CustomerKey, Number] = field(default_factory=dict)
    customer_seen: dict[str, datetime] = field(default_factory=dict)
    daily: dict[DailyKey, Number] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.has_redis() or self.has_postgres())

    def has_redis(self) -> bool:
        return bool(
            self.seats or self.seatmap_set or self.seatmap_del or self.availability
            or self.availability_fields
        )  # fmt: skip

    def has_postgres(self) -> bool:
        return bool(
            self.reservations or self.order_items or self.order_headers
            or self.order_expired_items or self.customer or self.customer_seen or self.daily
        )  # fmt: skip

    def drop_zero_counts(self) -> None:
        """Remove counters that sum to zero, as `merge` does as it goes: a zero delta is
        no change, yet written it could make a row or a field that should not exist.
        For mutations collected with `derive(..., into=)` (see `seat.apply_range`)."""
        for counts in (self.availability, self.order_expired_items, self.customer, self.daily):
            zeros = [key for key, value in counts.items() if not value]
            for key in zeros:
                del counts[key]

    def merge(self, later: Mutations) -> None:
        """Fold `later` into this. Called with mostly empty parts (a seat's changes, or a
        sink's batch entries), so each part is touched only when `later` has it."""
        if later.seats:
            self.seats.update(later.seats)
        if later.seatmap_del:
            for key in later.seatmap_del:
                self.seatmap_set.pop(key, None)
            self.seatmap_del.update(later.seatmap_del)
        if later.seatmap_set:
            if self.seatmap_del:
                self.seatmap_del.difference_update(later.seatmap_set)
            self.seatmap_set.update(later.seatmap_set)
        if later.availability:
            add_deltas(self.availability, later.availability)
        if later.availability_fields:
            self.availability_fields |= later.availability_fields
        if later.reservations:
            self.reservations.update(later.reservations)
        if later.order_items:
            self.order_items.update(later.order_items)
        for order_id, header in later.order_headers.items():
            mine = self.order_headers.get(order_id)
            if mine is None or header.rank() < mine.rank():
                self.order_headers[order_id] = header
        if later.order_expired_items:
            add_deltas(self.order_expired_items, later.order_expired_items)
        if later.customer:
            add_deltas(self.customer, later.customer)
        for customer_id, seen in later.customer_seen.items():
            mine_seen = self.customer_seen.get(customer_id)
            if mine_seen is None or seen > mine_seen:
                self.customer_seen[customer_id] = seen
        if later.daily:
            add_deltas(self.daily, later.daily)
