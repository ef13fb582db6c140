"""Realistic positioned mutations, made by the real pure seat projection.

Sinks are tested on what the projection really emits (diffs of derived seat views, with
all their sign changes and merge cases), not on hand-written Mutations: `Projector` feeds
seat facts through `workers.projection.seat.apply`, one fact per message of a seat-facts
topic partitioned by seat, as the seat stage does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from workers.projection import seat
from workers.projection.facts import (
    CatalogFact,
    CreatedFact,
    ExpiredFact,
    OrderedFact,
    SeatFact,
)
from workers.sinks.base import PositionedMutations

TOPIC = "seat-facts"
T0 = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
_NS = uuid.UUID("6f1c2b1e-0000-4000-8000-5ea7f1000000")


def uid(name: str) -> str:
    """A deterministic canonical UUID per name, so scenarios read like prose."""
    return str(uuid.uuid5(_NS, name))


@dataclass
class Projector:
    """Runs facts through the seat projection and records what each message yields."""

    partitions: int = 3
    states: dict[str, seat.SeatState] = field(default_factory=dict)
    next_offsets: dict[int, int] = field(default_factory=dict)
    log: list[PositionedMutations] = field(default_factory=list)
    _source_offset: int = 0

    def partition_of(self, seat_id: str) -> int:
        return uuid.UUID(seat_id).int % self.partitions

    def feed(self, fact: SeatFact) -> PositionedMutations:
        partition = self.partition_of(fact.seat_id)
        offset = self.next_offsets.get(partition, 0)
        self.next_offsets[partition] = offset + 1
        state = self.states.setdefault(fact.seat_id, seat.SeatState(fact.seat_id))
        entry = PositionedMutations(partition, offset, seat.apply(state, fact, (offset, 0)))
        self.log.append(entry)
        return entry

    def fid(self, topic: str) -> str:
        """A fresh fact id, as if read at the next offset of an upstream topic."""
        self._source_offset += 1
        return f"{topic}/0/{self._source_offset}/0"

    # -- fact builders (defaults keep scenarios short) --

    def catalog(
        self, seat_id: str, event: str, section: str, number: str, at: datetime = T0
    ) -> PositionedMutations:
        return self.feed(
            CatalogFact(
                fact_id=self.fid("seats-generated"), seat_id=seat_id, concert_event_id=event,
                section=section, seat_number=number, generated_at=at,
            )
        )  # fmt: skip

    def created_fact(
        self,
        seat_id: str,
        reservation: str,
        customer: str,
        at: datetime,
        *,
        price: str = "25.50",
        section: str | None = None,
        number: str = "A-1-1",
    ) -> CreatedFact:
        return CreatedFact(
            fact_id=self.fid("reservation-created"), seat_id=seat_id,
            reservation_id=reservation, message_id=uid(f"msg:{reservation}:{at}"),
            customer_id=customer, seat_number=number, section=section,
            base_price=Decimal(price), created_at=at, expires_at=at + timedelta(minutes=15),
        )  # fmt: skip

    def created(
        self, seat_id: str, reservation: str, customer: str, at: datetime, **kw: Any
    ) -> PositionedMutations:
        return self.feed(self.created_fact(seat_id, reservation, customer, at, **kw))

    def ordered(
        self,
        order: str,
        items: Sequence[tuple[str, str, str]],
        customer: str,
        at: datetime,
        *,
        message: str | None = None,
        total: str | None = None,
        currency: str = "EUR",
    ) -> list[PositionedMutations]:
        """An order-placed event: items are (seat, reservation, price)."""
        amount = Decimal(total) if total else sum((Decimal(p) for *_, p in items), Decimal(0))
        message_id = message or uid(f"msg:{order}:{at}")
        fid = self.fid("order-placed")
        return [
            self.feed(
                OrderedFact(
                    fact_id=f"{fid[:-1]}{index}", seat_id=seat_id, order_id=order,
                    message_id=message_id, reservation_id=reservation, customer_id=customer,
                    price=Decimal(price), item_index=index, item_count=len(items),
                    total_amount=amount, currency=currency, placed_at=at,
                )
            )
            for index, (seat_id, reservation, price) in enumerate(items)
        ]  # fmt: skip

    def expired(
        self,
        seat_id: str,
        reservation: str,
        at: datetime,
        *,
        customer: str | None = None,
        event: str | None = None,
    ) -> PositionedMutations:
        return self.feed(
            ExpiredFact(
                fact_id=self.fid("reservation-expired"), seat_id=seat_id,
                reservation_id=reservation, message_id=uid(f"msg:x:{reservation}:{at}"),
                customer_id=customer, concert_event_id=event, expired_at=at,
            )
        )  # fmt: skip


def batches(
    entries: Sequence[PositionedMutations], size: int
) -> Iterator[list[PositionedMutations]]:
    for start in range(0, len(entries), size):
        yield list(entries[start : start + size])


EVENT = uid("event:1")
EVENT_2 = uid("event:2")


def main_scenario(partitions: int = 3) -> Projector:
    """One concert event with two sections, and every rule the sinks must carry:

    reservations, an order with two items, an expiry of an ordered reservation, an expiry
    of an older reservation that must not free the seat a newer one holds, duplicates, an
    order before its reservation, an expiry before its creation, a seat whose catalog
    entry is unknown, activity on two days.
    """
    p = Projector(partitions=partitions)
    seats = {f"{s}{n}": uid(f"seat:{s}{n}") for s in "AB" for n in (1, 2, 3)}
    for name, seat_id in seats.items():
        p.catalog(seat_id, EVENT, name[0], f"{name[0]}-1-{name[1]}")
    c1, c2, c3 = "customer-1", "customer-2", "customer-3"
    h = timedelta(hours=1)

    # c1 holds A1 and A2 and orders both; then the ordered A2 reservation expires.
    r1, r2 = uid("res:1"), uid("res:2")
    p.created(seats["A1"], r1, c1, T0 + h, section="A", number="A-1-1")
    p.created(seats["A2"], r2, c1, T0 + h, section="A", number="A-1-2", price="25.5")
    order1 = uid("order:1")
    p.ordered(order1, [(seats["A1"], r1, "25.50"), (seats["A2"], r2, "25.50")], c1, T0 + 1.2 * h)
    p.expired(seats["A2"], r2, T0 + 1.5 * h, customer=c1, event=EVENT)

    # B1: a plain hold by c2, delivered twice (new fact id) and re-fed at a new position.
    r3 = uid("res:3")
    dup = p.created_fact(seats["B1"], r3, c2, T0 + 2 * h, price="40.00", number="B-1-1")
    p.feed(dup)
    p.feed(dup)  # the same fact at a later position: a duplicate, no mutations
    p.created(seats["B1"], r3, c2, T0 + 2 * h, price="40.00", number="B-1-1")

    # B2: an older reservation's expiry arrives after a newer reservation took the seat.
    r4a, r4b = uid("res:4a"), uid("res:4b")
    p.created(seats["B2"], r4a, c3, T0 + 2 * h, price="40.00", number="B-1-2")
    p.created(seats["B2"], r4b, c2, T0 + 3 * h, price="40.00", number="B-1-2")
    p.expired(seats["B2"], r4a, T0 + 2.25 * h, customer=c3)

    # B3 on the next day: the order arrives before its reservation-created.
    r5, order2 = uid("res:5"), uid("order:2")
    d2 = T0 + timedelta(days=1)
    p.ordered(order2, [(seats["B3"], r5, "39.99")], c3, d2 + 0.2 * h)
    p.created(seats["B3"], r5, c3, d2, price="39.99", section="B", number="B-1-3")

    # A3: the expiry arrives before its creation.
    r6 = uid("res:6")
    p.expired(seats["A3"], r6, d2 + 0.5 * h, customer=c2, event=EVENT)
    p.created(seats["A3"], r6, c2, d2 + 0.25 * h, section="A", number="A-1-3")

    # A seat of another event whose catalog entry never arrived (concert_event_id unknown).
    p.created(uid("seat:X1"), uid("res:7"), c1, d2 + h, section="X", number="X-1-1")
    return p


def random_scenario(
    facts: int,
    *,
    seed: int = 7,
    events: int = 4,
    seats_per_event: int = 200,
    customers: int = 100,
    partitions: int = 4,
) -> Projector:
    """A busy box office: `facts` seat facts after the catalog, from a seeded RNG.

    Customers reserve seats (often ones that are taken or were held before), order one to
    four of their reservations, and reservations expire (held or ordered ones, sometimes
    late or before anyone saw them created); some facts are delivered twice. Times move
    forward over several days, so daily rows of several days and sections change.
    Deterministic for a given seed.
    """
    import random

    rng = random.Random(seed)
    p = Projector(partitions=partitions)
    seats: list[tuple[str, str, str]] = []  # (seat, event, section)
    event_of: dict[str, str] = {}
    for e in range(events):
        event = uid(f"rnd-event:{seed}:{e}")
        sections = [chr(ord("A") + s) for s in range(rng.randint(2, 4))]
        for n in range(seats_per_event):
            section = sections[n % len(sections)]
            seat_id = uid(f"rnd-seat:{seed}:{e}:{n}")
            seats.append((seat_id, event, section))
            event_of[seat_id] = event
            p.catalog(seat_id, event, section, f"{section}-{n // 20}-{n % 20}")
    held: list[tuple[str, str, str, str]] = []  # (seat, reservation, customer, price)
    now = T0
    made: list[SeatFact] = []
    start = len(p.log)
    while len(p.log) - start < facts:
        now += timedelta(seconds=rng.randint(1, 120))
        roll = rng.random()
        if roll < 0.5 or not held:
            seat_id, _event, section = rng.choice(seats)
            reservation = uid(f"rnd-res:{seed}:{len(p.log)}")
            customer = f"customer-{rng.randrange(customers)}"
            price = f"{rng.randint(10, 200)}.{rng.choice(['00', '10', '50', '99'])}"
            fact: SeatFact = p.created_fact(
                seat_id, reservation, customer, now, price=price,
                section=section if rng.random() < 0.8 else None, number=f"{section}-0-0",
            )  # fmt: skip
            p.feed(fact)
            made.append(fact)
            held.append((seat_id, reservation, customer, price))
        elif roll < 0.75:
            customer = rng.choice(held)[2]
            mine = [h for h in held[-200:] if h[2] == customer][: rng.randint(1, 4)]
            order = uid(f"rnd-order:{seed}:{len(p.log)}")
            p.ordered(order, [(s, r, price) for s, r, _, price in mine], customer, now)
        elif roll < 0.95:
            seat_id, reservation, customer, _ = held.pop(rng.randrange(len(held)))
            event = event_of[seat_id] if rng.random() < 0.5 else None
            when = now - timedelta(minutes=rng.randint(0, 30))  # expiries are often late
            fact = ExpiredFact(
                fact_id=p.fid("reservation-expired"), seat_id=seat_id,
                reservation_id=reservation, message_id=uid(f"rnd-x:{seed}:{len(p.log)}"),
                customer_id=customer if rng.random() < 0.8 else None,
                concert_event_id=event, expired_at=max(when, T0),
            )  # fmt: skip
            p.feed(fact)
            made.append(fact)
        elif made:
            p.feed(rng.choice(made))  # the same fact again: a duplicate
    return p
