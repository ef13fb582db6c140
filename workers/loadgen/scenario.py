"""Upstream-shaped event streams: what the .NET services really put on the wire.

Used by the integration tests, the benchmarks and (later) the demo's load generator.
Payloads follow ../shared/upstream-contracts/NOTES.md: camelCase, reservation-created keyed
by the seat id in "N" form with the payload's ids in "D" form, .NET "O" timestamps with 7
fractional digits (some without an offset), money written from C# decimals, the
producers' "v3" reservation-expired. Records are keyed as upstream keys them, and the
partition is chosen like librdkafka's default (crc32 of the key), not like Kafka's Java
client: the workers must re-key by canonical ids.

The stream is deterministic for a seed, and deliberately untidy: duplicates, and expiries
or orders produced before the creation they name.
"""

from __future__ import annotations

import random
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson

SEATS_GENERATED = "seats-generated"
RESERVATION_CREATED = "reservation-created"
ORDER_PLACED = "order-placed"
RESERVATION_EXPIRED = "reservation-expired"


@dataclass(frozen=True, slots=True)
class UpstreamRecord:
    topic: str  # logical topic name
    key: bytes
    value: bytes

    def partition(self, partitions: int) -> int:
        """librdkafka's consistent partitioner: crc32 of the key."""
        return zlib.crc32(self.key) % partitions


@dataclass(frozen=True, slots=True)
class ScenarioShape:
    concert_events: int = 8
    seats_per_event: int = 700
    sections: tuple[str, ...] = ("VIP", "FRONT", "BACK")
    reservations: int = 15_000
    expire_ratio: float = 0.55
    order_ratio: float = 0.5
    duplicate_ratio: float = 0.03
    early_ratio: float = 0.05
    """Share of expiries and orders produced before the creation they name."""


def dotnet_time(at: datetime, rng: random.Random) -> str:
    """.NET DateTime "O": 7 fractional digits; 'Z', '+00:00' or (kind unspecified) nothing."""
    ticks = rng.randrange(10)  # the 100 ns digit .NET has and Python does not
    base = at.strftime("%Y-%m-%dT%H:%M:%S.%f") + str(ticks)
    return base + rng.choice(["Z", "+00:00", ""])


def money(value: Decimal) -> bytes:
    return str(value).encode()


def _json(doc: dict[str, object], decimals: dict[str, Decimal] | None = None) -> bytes:
    """orjson, then splice decimals in as JSON numbers (C# writes decimals as numbers)."""
    raw = orjson.dumps(doc)
    for name, amount in (decimals or {}).items():
        raw = raw.replace(f'"@{name}@"'.encode(), money(amount))
    return raw


def scenario(seed: int = 7, shape: ScenarioShape = ScenarioShape()) -> list[UpstreamRecord]:
    rng = random.Random(seed)
    uid = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)  # noqa: E731
    start = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
    records: list[UpstreamRecord] = []
    late: list[
        UpstreamRecord
    ] = []  # produced at the very end: creations whose successors came first

    seats: list[tuple[uuid.UUID, uuid.UUID, str, str]] = []  # seat, event, section, seat_number
    for _ in range(shape.concert_events):
        event = uid()
        listed = []
        for n in range(shape.seats_per_event):
            section = shape.sections[n % len(shape.sections)]
            row, number = str(n // 20 + 1), n % 20 + 1
            seat = uid()
            listed.append({"seatId": str(seat), "section": section, "row": row, "number": number})
            seats.append((seat, event, section, f"{section}-{row}-{number}"))
        doc = {"eventId": str(event), "seats": listed, "totalSeats": len(listed),
               "generatedAt": dotnet_time(start, rng)}  # fmt: skip
        records.append(UpstreamRecord(SEATS_GENERATED, str(event).encode(), _json(doc)))

    customers = [f"customer-{i}" for i in range(200)] + ["user@example.com"]
    customers += [str(uid()) for _ in range(50)]
    free_at: dict[uuid.UUID, datetime] = {}
    pending_orders: list[tuple[uuid.UUID, uuid.UUID, str, Decimal, datetime]] = []

    def flush_order(force: bool = False) -> None:
        if not pending_orders or (not force and len(pending_orders) < rng.randint(1, 3)):
            return
        customer = pending_orders[0][2]
        placed = max(p[4] for p in pending_orders) + timedelta(seconds=30)
        items = [{"reservationId": str(r), "seatId": str(s), "price": f"@p{i}@"}
                 for i, (r, s, _, _, _) in enumerate(pending_orders)]  # fmt: skip
        prices = {f"p{i}": p[3] for i, p in enumerate(pending_orders)}
        total = sum((p[3] for p in pending_orders), Decimal(0))
        order = uid()
        doc = {"messageId": str(uid()), "orderId": str(order), "customerId": customer,
               "items": items, "totalAmount": "@total@", "currency": "EUR",
               "placedAt": dotnet_time(placed, rng), "version": 1}  # fmt: skip
        records.append(
            UpstreamRecord(
                ORDER_PLACED, str(order).encode(), _json(doc, {**prices, "total": total})
            )
        )
        pending_orders.clear()

    clock = start
    for _ in range(shape.reservations):
        clock += timedelta(seconds=rng.randint(1, 20))
        pick = rng.randrange(len(seats))
        seat, event, section, seat_number = seats[pick]
        created = max(clock, free_at.get(seat, clock))
        expires = created + timedelta(minutes=15)
        reservation, customer = uid(), rng.choice(customers)
        price = Decimal(rng.choice(["0", "25.00", "49.99", "120.50", "0.10"]))
        doc = {"eventId": str(uid()), "reservationId": str(reservation), "customerId": customer,
               "seatId": str(seat), "seatNumber": seat_number, "section": section,
               "basePrice": "@price@", "createdAt": dotnet_time(created, rng),
               "expiresAt": dotnet_time(expires, rng), "status": "active"}  # fmt: skip
        creation = UpstreamRecord(
            RESERVATION_CREATED, seat.hex.encode(), _json(doc, {"price": price})
        )
        early = rng.random() < shape.early_ratio
        (late if early else records).append(creation)
        roll = rng.random()
        if roll < shape.expire_ratio:
            x = {"messageId": str(uid()), "reservationId": str(reservation), "seatId": str(seat),
                 "customerId": customer, "concertEventId": str(event)}  # fmt: skip
            records.append(UpstreamRecord(RESERVATION_EXPIRED, seat.hex.encode(), _json(x)))
            free_at[seat] = expires + timedelta(seconds=1)
        elif roll < shape.expire_ratio + shape.order_ratio:
            if pending_orders and pending_orders[0][2] != customer:
                flush_order(force=True)
            pending_orders.append((reservation, seat, customer, price, created))
            flush_order()
            seats[pick] = seats[-1]  # sold: never reserved again
            seats.pop()
        else:
            seats[pick] = seats[-1]  # still held at the end
            seats.pop()
        if not seats:
            break
    flush_order(force=True)
    records.extend(late)

    with_duplicates: list[UpstreamRecord] = []
    again: list[tuple[int, UpstreamRecord]] = []
    for index, record in enumerate(records):
        if rng.random() < shape.duplicate_ratio:
            again.append((rng.randrange(index, len(records)), record))
    again.sort(key=lambda item: item[0])
    position = 0
    for index, record in enumerate(records):
        with_duplicates.append(record)
        while position < len(again) and again[position][0] == index:
            with_duplicates.append(again[position][1])
            position += 1
    return with_duplicates
