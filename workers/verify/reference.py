"""The reference fold: the read models computed straight from the whole set of events.

Deliberately simple and deliberately *not* built on the seat state machine: no facts, no
positions, no partitions, no deltas; one pass to collect, one pass to compute, globally.
It states the rules of `workers.projection.seat` a second time, from the other side, so
that tests (and the fault-injection checker, and `seatflow verify --against-topics`) can
compare a live read model with what the topics say it must be.

Joins follow the events' own ids: an order item or an expiry concerns the reservation it
names *on the seat it names*.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from workers.events import (
    Event,
    GeneratedSeat,
    OrderItem,
    OrderPlaced,
    ReservationCreated,
    ReservationExpired,
    SeatsGenerated,
)
from workers.projection.facts import fact_id
from workers.projection.model import utc_iso
from workers.verify.snapshot import Snapshot, norm


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A decoded event and where it was read."""

    topic: str
    partition: int
    offset: int
    event: Event


@dataclass(frozen=True, slots=True)
class _Placed:
    order: OrderPlaced
    item: OrderItem
    index: int


def fold(records: Iterable[SourceRecord]) -> Snapshot:
    catalogs: dict[str, list[tuple[SeatsGenerated, GeneratedSeat]]] = {}
    creations: dict[tuple[str, str], ReservationCreated] = {}
    expiries: dict[tuple[str, str], tuple[ReservationExpired, str]] = {}
    placed: dict[tuple[str, str], _Placed] = {}  # (seat, order) -> the item counted there
    last_seen: dict[str, datetime] = {}

    def seen(customer: str | None, at: datetime) -> None:
        if customer is not None and (customer not in last_seen or at > last_seen[customer]):
            last_seen[customer] = at

    # ---- collect
    for record in records:
        ev = record.event
        if isinstance(ev, SeatsGenerated):
            for seat in ev.seats:
                catalogs.setdefault(seat.seat_id, []).append((ev, seat))
        elif isinstance(ev, ReservationCreated):
            seen(ev.customer_id, ev.created_at)
            key = (ev.seat_id, ev.reservation_id)
            old = creations.get(key)
            if old is None or (ev.created_at, ev.message_id) < (old.created_at, old.message_id):
                creations[key] = ev
        elif isinstance(ev, ReservationExpired):
            seen(ev.customer_id, ev.expired_at)
            key = (ev.seat_id, ev.reservation_id)
            tie = fact_id(record.topic, record.partition, record.offset)
            rank = (ev.expired_at, ev.message_id or "", tie)
            if key not in expiries or rank < _x_rank(expiries[key]):
                expiries[key] = (ev, tie)
        elif isinstance(ev, OrderPlaced):
            seen(ev.customer_id, ev.placed_at)
            for index, item in enumerate(ev.items):
                key = (item.seat_id, ev.order_id)
                candidate = _Placed(ev, item, index)
                if key not in placed or _o_rank(candidate) < _o_rank(placed[key]):
                    placed[key] = candidate

    snap = Snapshot()
    tables, hashes = snap.tables, snap.hashes

    # ---- seats' catalog entries
    winner: dict[str, tuple[SeatsGenerated, GeneratedSeat]] = {}
    for seat_id, entries in catalogs.items():
        winner[seat_id] = max(
            entries,
            key=lambda e: (
                e[0].generated_at,
                e[0].concert_event_id,
                e[1].section,
                e[1].seat_number,
            ),
        )
        for ev, seat in entries:  # every catalog entry names fields of its availability hash
            fields = hashes.setdefault(f"availability:{ev.concert_event_id}", {})
            for name in ("total", "available", "reserved", "ordered", f"{seat.section}:available"):
                fields.setdefault(name, "0")

    def concert_event_of(seat_id: str) -> str | None:
        if seat_id in winner:
            return winner[seat_id][0].concert_event_id
        named = [x.concert_event_id for (s, _), (x, _) in expiries.items()
                 if s == seat_id and x.concert_event_id is not None]  # fmt: skip
        return min(named) if named else None

    def catalog_section(seat_id: str) -> str | None:
        return winner[seat_id][1].section if seat_id in winner else None

    # ---- which order took each reservation (smallest order rank on that seat)
    order_of: dict[tuple[str, str], _Placed] = {}
    for (seat_id, _), p in placed.items():
        key = (seat_id, p.item.reservation_id)
        if key not in order_of or _o_rank(p) < _o_rank(order_of[key]):
            order_of[key] = p

    customers: dict[str, list] = {}  # type: ignore[type-arg]
    daily: dict[tuple, list] = {}  # type: ignore[type-arg]

    def customer(c: str) -> list:  # type: ignore[type-arg]
        return customers.setdefault(c, [0, 0, 0, 0, Decimal(0)])

    def day_row(event: str | None, section: str | None, at: datetime) -> list | None:  # type: ignore[type-arg]
        if event is None or section is None:
            return None
        return daily.setdefault((event, section, at.date()), [0, 0, 0, Decimal(0)])

    # ---- reservations, holders
    holders: dict[str, tuple[ReservationCreated, str]] = {}
    for (seat_id, reservation_id), c in creations.items():
        expiry = expiries.get((seat_id, reservation_id))
        order = order_of.get((seat_id, reservation_id))
        status = "expired" if expiry else "ordered" if order else "active"
        section = c.section if c.section is not None else catalog_section(seat_id)
        event = concert_event_of(seat_id)
        tables["reservations"][(reservation_id,)] = tuple(norm(v) for v in (
            seat_id, event, c.customer_id, section, c.seat_number, c.base_price, status,
            c.created_at, c.expires_at, expiry[0].expired_at if expiry else None,
            order.order.order_id if order else None,
        ))  # fmt: skip
        row = customer(c.customer_id)
        row[0] += 1
        row[1] += status == "active"
        row[2] += expiry is not None
        seat_section = catalog_section(seat_id) or section
        if (r := day_row(event, seat_section, c.created_at)) is not None:
            r[0] += 1
        if expiry and (r := day_row(event, seat_section, expiry[0].expired_at)) is not None:
            r[1] += 1
        if status != "expired":
            current = holders.get(seat_id)
            if current is None or (c.created_at, reservation_id) > (
                current[0].created_at,
                current[0].reservation_id,
            ):
                holders[seat_id] = (c, "ordered" if order else "reserved")

    # ---- orders and their items
    headers: dict[str, OrderPlaced] = {}
    expired_items: dict[str, int] = {}
    for (seat_id, order_id), p in placed.items():
        o = p.order
        if order_id not in headers or (o.placed_at, o.message_id) < (
            headers[order_id].placed_at,
            headers[order_id].message_id,
        ):
            headers[order_id] = o
        item_expired = (seat_id, p.item.reservation_id) in expiries
        expired_items[order_id] = expired_items.get(order_id, 0) + item_expired
        tables["order_items"][(order_id, seat_id)] = (
            p.item.reservation_id,
            norm(p.item.price),
            "reservation_expired" if item_expired else "active",
        )
        if p.index == 0:
            row = customer(o.customer_id)
            row[3] += 1
            row[4] += o.total_amount
        created_here = creations.get((seat_id, p.item.reservation_id))
        section = catalog_section(seat_id) or (created_here.section if created_here else None)
        if (r := day_row(concert_event_of(seat_id), section, o.placed_at)) is not None:
            r[2] += 1
            r[3] += p.item.price
    for order_id, o in headers.items():
        state = "reservation_expired" if expired_items[order_id] else "placed"
        tables["orders"][(order_id,)] = (
            o.customer_id, state, len(o.items), norm(o.total_amount), o.currency, o.placed_at,
        )  # fmt: skip

    for c in set(customers) | set(last_seen):
        counts = customers.get(c, [0, 0, 0, 0, Decimal(0)])
        tables["customer_activity"][(c,)] = (*(norm(v) for v in counts), last_seen.get(c))
    for key, counts in daily.items():
        if any(counts):
            tables["event_sales_daily"][key] = tuple(norm(v) for v in counts)

    # ---- Redis: seats, seat maps, availability
    for seat_id in set(winner) | {s for s, _ in creations}:
        holder = holders.get(seat_id)
        status = holder[1] if holder else "available"
        if seat_id in winner:
            ev, seat = winner[seat_id]
            section, number = seat.section, seat.seat_number
            hashes.setdefault(f"seatmap:{ev.concert_event_id}", {})[seat_id] = status
            fields = hashes[f"availability:{ev.concert_event_id}"]
            for name in ("total", status) + ((f"{section}:available",) if not holder else ()):
                fields[name] = str(int(fields[name]) + 1)
        else:
            newest = max((c for (s, _), c in creations.items() if s == seat_id),
                         key=lambda c: (c.created_at, c.reservation_id))  # fmt: skip
            section, number = newest.section, newest.seat_number
        record = {
            "status": status,
            "reservation_id": holder[0].reservation_id if holder else None,
            "customer_id": holder[0].customer_id if holder else None,
            "concert_event_id": concert_event_of(seat_id),
            "section": section,
            "seat_number": number,
            "expires_at": utc_iso(holder[0].expires_at) if holder else None,
        }
        hashes[f"seat:{seat_id}"] = {k: v for k, v in record.items() if v is not None}
    return snap


def _x_rank(entry: tuple[ReservationExpired, str]) -> tuple[datetime, str, str]:
    return (entry[0].expired_at, entry[0].message_id or "", entry[1])


def _o_rank(p: _Placed) -> tuple[datetime, str, str, int]:
    return (p.order.placed_at, p.order.message_id, p.item.reservation_id, p.index)
