"""Decode throughput: orjson alone vs. full decode + validate, per topic and for a mix.

    .venv/bin/python bench/decode.py [--events 100000] [--repeat 3] [--seed 7]

Builds upstream-shaped records (what the .NET producers really send: camelCase, "O"-format
times with 7 fractional digits, GUID keys in "N" form), mostly reservation-created/-expired,
some seats-generated (50 seats) and order-placed (1-4 items), then times, on one core:
`orjson.loads` alone (the floor: a decoder cannot be faster than its parser), `decode` per
topic, and `decode` over the shuffled mix, each also with the validators' quick check
(jsonschema-rs) switched off: the baseline, in the same process. Best of `--repeat` runs,
CPU time of this process (less sensitive than wall time to other processes on a shared
machine; both are printed).
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import orjson

from workers.decoding import decode, load_validators, validators
from workers.events import EventType

Record = tuple[EventType, bytes, bytes, list[tuple[str, bytes]], int]

MIX = {
    EventType.RESERVATION_CREATED: 0.45,
    EventType.RESERVATION_EXPIRED: 0.40,
    EventType.ORDER_PLACED: 0.12,
    EventType.SEATS_GENERATED: 0.03,
}
SECTIONS = ("VIP", "FRONT", "GENERAL", "BACK")
PRICES = ("0", "45.00", "75.50", "120.00", "150.00", "249.99")


def dotnet_o(moment: datetime, *, with_offset: bool) -> str:
    """.NET "O" format: 7 fractional digits; no offset for an unspecified-kind DateTime."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + str(random.randrange(10))
    return text + "Z" if with_offset else text


def make_record(event_type: EventType, base: datetime) -> Record:
    moment = base + timedelta(seconds=random.randrange(86_400 * 30))
    ts_ms = int(moment.timestamp() * 1000)
    seat = uuid.uuid4()
    if event_type is EventType.RESERVATION_CREATED:
        section = random.choice(SECTIONS)
        payload: dict[str, object] = {
            "eventId": str(uuid.uuid4()),
            "reservationId": str(uuid.uuid4()),
            "customerId": random.choice(
                (
                    f"customer-{random.randrange(10**6)}",
                    f"user{random.randrange(10**5)}@example.com",
                )
            ),
            "seatId": str(seat),
            "seatNumber": f"{section}-{random.randrange(1, 40)}-{random.randrange(1, 60)}",
            "section": section,
            "basePrice": 0,
            "createdAt": dotnet_o(moment, with_offset=random.random() < 0.5),
            "expiresAt": dotnet_o(
                moment + timedelta(minutes=15), with_offset=random.random() < 0.5
            ),
            "status": "active",
        }
        return event_type, orjson.dumps(payload), seat.hex.encode(), [], ts_ms
    if event_type is EventType.RESERVATION_EXPIRED:
        payload = {
            "messageId": str(uuid.uuid4()),
            "reservationId": str(uuid.uuid4()),
            "seatId": str(seat),
            "customerId": f"customer-{random.randrange(10**6)}",
            "concertEventId": str(uuid.uuid4()),
        }
        return event_type, orjson.dumps(payload), seat.hex.encode(), [], ts_ms
    if event_type is EventType.ORDER_PLACED:
        order = uuid.uuid4()
        prices = [random.choice(PRICES) for _ in range(random.randint(1, 4))]
        items = ",".join(
            f'{{"reservationId":"{uuid.uuid4()}","seatId":"{uuid.uuid4()}","price":{price}}}'
            for price in prices
        )
        total = sum(float(price) for price in prices)
        raw = (
            f'{{"messageId":"{uuid.uuid4()}","orderId":"{order}","customerId":"customer-42",'
            f'"items":[{items}],"totalAmount":{total:.2f},"currency":"USD",'
            f'"placedAt":"{dotnet_o(moment, with_offset=True)}","version":1}}'
        ).encode()
        return event_type, raw, str(order).encode(), [], ts_ms
    concert = uuid.uuid4()
    seats = [
        {
            "seatId": str(uuid.uuid4()),
            "section": SECTIONS[i // 13 % 4],
            "row": str(i // 10 + 1),
            "number": i % 10 + 1,
        }
        for i in range(50)
    ]
    payload = {
        "eventId": str(concert),
        "seats": seats,
        "totalSeats": 50,
        "generatedAt": dotnet_o(moment, with_offset=True),
    }
    return event_type, orjson.dumps(payload), str(concert).encode(), [], ts_ms


def best_rate(
    records: list[Record], work: Callable[[Record], object], repeat: int
) -> tuple[float, float]:
    """(events/s by CPU time, events/s by wall time), best of `repeat` runs."""
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        for record in records:
            work(record)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return len(records) / best_cpu, len(records) / best_wall


def parse_only(record: Record) -> object:
    return orjson.loads(record[1])


def full_decode(record: Record) -> object:
    return decode(*record)


@contextmanager
def quick_check_off() -> Iterator[None]:
    """Every validation through fastjsonschema alone, as before the quick check."""
    compiled = load_validators()
    validators._validators = {
        key: (full, no_nul, validators._never) for key, (full, no_nul, _) in compiled.items()
    }
    try:
        yield
    finally:
        validators._validators = compiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    random.seed(args.seed)
    base = datetime(2026, 4, 1, tzinfo=UTC)
    kinds = random.choices(list(MIX), weights=list(MIX.values()), k=args.events)
    records = [make_record(kind, base) for kind in kinds]
    load_validators()
    for record in records:  # every record must decode: a benchmark of errors proves nothing
        decode(*record)

    print(
        f"{len(records)} records, {sum(len(r[1]) for r in records) / len(records):.0f} B "
        "average; events/s, best of "
        f"{args.repeat}, CPU time (wall time in brackets)"
    )
    print(
        f"{'topic':22} {'share':>6} {'orjson.loads':>22} {'decode+validate':>22} {'ratio':>6} "
        f"{'no quick check':>22} {'speed-up':>8}"
    )
    groups: dict[str, list[Record]] = {
        kind.value: [r for r in records if r[0] is kind] for kind in MIX
    }
    groups["mix (all topics)"] = records
    for name, group in groups.items():
        parse_cpu, parse_wall = best_rate(group, parse_only, args.repeat)
        decode_cpu, decode_wall = best_rate(group, full_decode, args.repeat)
        with quick_check_off():
            before_cpu, before_wall = best_rate(group, full_decode, args.repeat)
        print(
            f"{name:22} {len(group) / len(records):6.1%} "
            f"{parse_cpu:>10,.0f} ({parse_wall:>9,.0f}) "
            f"{decode_cpu:>10,.0f} ({decode_wall:>9,.0f}) "
            f"{parse_cpu / decode_cpu:5.1f}x "
            f"{before_cpu:>10,.0f} ({before_wall:>9,.0f}) "
            f"{decode_cpu / before_cpu:7.2f}x"
        )
    print("ratio = how many times slower full decoding is than orjson.loads alone (CPU time);")
    print("speed-up = decode+validate against the same without the quick check (CPU time)")


if __name__ == "__main__":
    main()
