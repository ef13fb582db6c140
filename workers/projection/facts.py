"""Seat facts: every consumed event, cut into what it says about one seat.

Upstream topics are keyed by seat id (N format, librdkafka's partitioner), concert event id
or order id, so no two of them are co-partitioned. The ingest stage therefore splits each
decoded event into facts about single seats and re-keys them by canonical seat id: every
rule of the read-side then needs the state of one seat only (see `workers.projection.seat`).

A fact's `fact_id` names its origin (source topic, partition, offset, item index), so the
seat projection recognises a fact that the ingest stage produced twice after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from workers.events import (
    CanonicalId,
    Event,
    OrderPlaced,
    ReservationCreated,
    ReservationExpired,
    SeatsGenerated,
)


@dataclass(slots=True, kw_only=True, unsafe_hash=True)  # immutable by convention: see model.py
class CatalogFact:
    """The seat belongs to a concert event (seats-generated)."""

    fact_id: str
    seat_id: CanonicalId
    concert_event_id: CanonicalId
    section: str
    seat_number: str
    generated_at: datetime


@dataclass(slots=True, kw_only=True, unsafe_hash=True)  # immutable by convention: see model.py
class CreatedFact:
    """A reservation holds the seat (reservation-created)."""

    fact_id: str
    seat_id: CanonicalId
    reservation_id: CanonicalId
    message_id: CanonicalId
    customer_id: str
    seat_number: str
    section: str | None
    base_price: Decimal
    created_at: datetime
    expires_at: datetime


@dataclass(slots=True, kw_only=True, unsafe_hash=True)  # immutable by convention: see model.py
class OrderedFact:
    """One item of an order names a reservation of the seat (order-placed).

    The order's header travels with every item so that any seat can write the order row;
    `item_index` 0 carries the order-level counts (one order, one count).
    """

    fact_id: str
    seat_id: CanonicalId
    order_id: CanonicalId
    message_id: CanonicalId
    reservation_id: CanonicalId
    customer_id: str
    price: Decimal
    item_index: int
    item_count: int
    total_amount: Decimal
    currency: str
    placed_at: datetime


@dataclass(slots=True, kw_only=True, unsafe_hash=True)  # immutable by convention: see model.py
class ExpiredFact:
    """The named reservation of the seat ended without purchase (reservation-expired)."""

    fact_id: str
    seat_id: CanonicalId
    reservation_id: CanonicalId
    message_id: CanonicalId | None
    customer_id: str | None
    concert_event_id: CanonicalId | None
    expired_at: datetime


SeatFact = CatalogFact | CreatedFact | OrderedFact | ExpiredFact


def fact_id(topic: str, partition: int, offset: int, index: int = 0) -> str:
    """The identity of a fact: where its event was read, and which item of it."""
    return f"{topic}/{partition}/{offset}/{index}"


def facts_from_event(event: Event, topic: str, partition: int, offset: int) -> list[SeatFact]:
    """Split one decoded event into facts about single seats (pure)."""
    if isinstance(event, ReservationCreated):
        return [
            CreatedFact(
                fact_id=fact_id(topic, partition, offset),
                seat_id=event.seat_id,
                reservation_id=event.reservation_id,
                message_id=event.message_id,
                customer_id=event.customer_id,
                seat_number=event.seat_number,
                section=event.section,
                base_price=event.base_price,
                created_at=event.created_at,
                expires_at=event.expires_at,
            )
        ]
    if isinstance(event, ReservationExpired):
        return [
            ExpiredFact(
                fact_id=fact_id(topic, partition, offset),
                seat_id=event.seat_id,
                reservation_id=event.reservation_id,
                message_id=event.message_id,
                customer_id=event.customer_id,
                concert_event_id=event.concert_event_id,
                expired_at=event.expired_at,
            )
        ]
    if isinstance(event, OrderPlaced):
        return [
            OrderedFact(
                fact_id=fact_id(topic, partition, offset, index),
                seat_id=item.seat_id,
                order_id=event.order_id,
                message_id=event.message_id,
                reservation_id=item.reservation_id,
                customer_id=event.customer_id,
                price=item.price,
                item_index=index,
                item_count=len(event.items),
                total_amount=event.total_amount,
                currency=event.currency,
                placed_at=event.placed_at,
            )
            for index, item in enumerate(event.items)
        ]
    if isinstance(event, SeatsGenerated):
        return [
            CatalogFact(
                fact_id=fact_id(topic, partition, offset, index),
                seat_id=seat.seat_id,
                concert_event_id=event.concert_event_id,
                section=seat.section,
                seat_number=seat.seat_number,
                generated_at=event.generated_at,
            )
            for index, seat in enumerate(event.seats)
        ]
    raise TypeError(f"not an event: {event!r}")


# ---------------------------------------------------------------- wire form
# Facts travel through Kafka (the seat-facts topic) and live in the seat table, so they
# need a compact, exact, version-tagged encoding: plain JSON-able lists, Decimal as str,
# datetimes as ISO 8601 with offset.

_KIND = {CatalogFact: "c", CreatedFact: "r", OrderedFact: "o", ExpiredFact: "x"}


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def fact_to_wire(fact: SeatFact) -> list[Any]:
    if isinstance(fact, CreatedFact):
        return [
            "r", fact.fact_id, fact.seat_id, fact.reservation_id, fact.message_id,
            fact.customer_id, fact.seat_number, fact.section, str(fact.base_price),
            fact.created_at.isoformat(), fact.expires_at.isoformat(),
        ]  # fmt: skip
    if isinstance(fact, ExpiredFact):
        return [
            "x", fact.fact_id, fact.seat_id, fact.reservation_id, fact.message_id,
            fact.customer_id, fact.concert_event_id, fact.expired_at.isoformat(),
        ]  # fmt: skip
    if isinstance(fact, OrderedFact):
        return [
            "o", fact.fact_id, fact.seat_id, fact.order_id, fact.message_id,
            fact.reservation_id, fact.customer_id, str(fact.price), fact.item_index,
            fact.item_count, str(fact.total_amount), fact.currency, fact.placed_at.isoformat(),
        ]  # fmt: skip
    return [
        "c", fact.fact_id, fact.seat_id, fact.concert_event_id, fact.section,
        fact.seat_number, fact.generated_at.isoformat(),
    ]  # fmt: skip


def fact_from_wire(wire: list[Any]) -> SeatFact:
    kind = wire[0]
    if kind == "r":
        return CreatedFact(
            fact_id=wire[1], seat_id=wire[2], reservation_id=wire[3], message_id=wire[4],
            customer_id=wire[5], seat_number=wire[6], section=wire[7],
            base_price=Decimal(wire[8]), created_at=_dt(wire[9]), expires_at=_dt(wire[10]),
        )  # fmt: skip
    if kind == "x":
        return ExpiredFact(
            fact_id=wire[1], seat_id=wire[2], reservation_id=wire[3], message_id=wire[4],
            customer_id=wire[5], concert_event_id=wire[6], expired_at=_dt(wire[7]),
        )  # fmt: skip
    if kind == "o":
        return OrderedFact(
            fact_id=wire[1], seat_id=wire[2], order_id=wire[3], message_id=wire[4],
            reservation_id=wire[5], customer_id=wire[6], price=Decimal(wire[7]),
            item_index=wire[8], item_count=wire[9], total_amount=Decimal(wire[10]),
            currency=wire[11], placed_at=_dt(wire[12]),
        )  # fmt: skip
    if kind == "c":
        return CatalogFact(
            fact_id=wire[1], seat_id=wire[2], concert_event_id=wire[3], section=wire[4],
            seat_number=wire[5], generated_at=_dt(wire[6]),
        )  # fmt: skip
    raise ValueError(f"unknown seat fact kind {kind!r}")


def wires_from_event(event: Event, topic: str, partition: int, offset: int) -> list[list[Any]]:
    """`[fact_to_wire(f) for f in facts_from_event(...)]`, without building the facts.

    Why: the replay's decoding processes ship facts in their wire form only, and the fact
    objects in between cost about as much as the wire lists themselves (a third of what
    cutting an event into facts costs there). Same lists, element for element (tested).
    """
    if isinstance(event, ReservationCreated):
        return [
            [
                "r", f"{topic}/{partition}/{offset}/0", event.seat_id, event.reservation_id,
                event.message_id, event.customer_id, event.seat_number, event.section,
                str(event.base_price), event.created_at.isoformat(),
                event.expires_at.isoformat(),
            ]
        ]  # fmt: skip
    if isinstance(event, ReservationExpired):
        return [
            [
                "x", f"{topic}/{partition}/{offset}/0", event.seat_id, event.reservation_id,
                event.message_id, event.customer_id, event.concert_event_id,
                event.expired_at.isoformat(),
            ]
        ]  # fmt: skip
    if isinstance(event, OrderPlaced):
        prefix = f"{topic}/{partition}/{offset}/"
        count = len(event.items)
        total, placed = str(event.total_amount), event.placed_at.isoformat()
        return [
            [
                "o", f"{prefix}{index}", item.seat_id, event.order_id, event.message_id,
                item.reservation_id, event.customer_id, str(item.price), index, count, total,
                event.currency, placed,
            ]
            for index, item in enumerate(event.items)
        ]  # fmt: skip
    if isinstance(event, SeatsGenerated):
        prefix = f"{topic}/{partition}/{offset}/"
        concert, generated = event.concert_event_id, event.generated_at.isoformat()
        return [
            [
                "c", f"{prefix}{index}", seat.seat_id, concert, seat.section,
                seat.seat_number, generated,
            ]
            for index, seat in enumerate(event.seats)
        ]  # fmt: skip
    raise TypeError(f"not an event: {event!r}")
