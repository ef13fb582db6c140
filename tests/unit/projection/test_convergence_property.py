"""Property: the seat projection equals the reference fold, whatever the interleaving.

Random streams over a few concert events, seats, reservations and orders, with upstream
duplicates, are cut into topic partitions; hypothesis then chooses how partitions
interleave (per-partition order kept), how the ingest stage batches them, whether it
produces some batches twice (a crash before its commit), whether the seat stage re-reads
messages whose state it had saved ahead of the sinks (a crash between the table changelog
and the sinks), and whether it projects a slice record by record or as one range. The
in-memory sink must end equal to the reference fold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.events import (
    EventType,
    GeneratedSeat,
    OrderItem,
    OrderPlaced,
    ReservationCreated,
    ReservationExpired,
    SeatsGenerated,
)
from workers.projection.batches import encode_facts, encode_state, route
from workers.projection.facts import SeatFact, facts_from_event
from workers.projection.seat import SeatState
from workers.records import RawRecord
from workers.seat_stage import ProjectedPartition, once_in_offset_order, project_partition
from workers.sinks.memory import MemorySink
from workers.verify.reference import SourceRecord, fold

T0 = datetime(2026, 11, 23, 23, 50, tzinfo=UTC)  # close to midnight: days vary
EVENTS = ["00000000-0000-4000-8000-00000000000" + str(i) for i in range(2)]
SEATS = [f"5ea70000-0000-4000-8000-0000000000{i:02d}" for i in range(6)]
RESERVATIONS = [f"7e500000-0000-4000-8000-0000000000{i:02d}" for i in range(8)]
ORDERS = [f"0d000000-0000-4000-8000-0000000000{i:02d}" for i in range(4)]
CUSTOMERS = ["customer-1", "user@example.com", "c3"]
SEAT_PARTITIONS = 3


def _msg(n: int) -> str:
    return f"aaaa0000-0000-4000-8000-{n:012d}"


times = st.integers(min_value=0, max_value=40).map(lambda m: T0 + timedelta(minutes=m))
prices = st.sampled_from([Decimal("0.00"), Decimal("0.10"), Decimal("12.50"), Decimal("99.99")])


@st.composite
def event_sets(draw: st.DrawFn) -> list[tuple[EventType, object]]:
    events: list[tuple[EventType, object]] = []
    n = 0
    # seats 0-3 get a catalog entry (two sections); seats 4-5 never do
    for i, event_id in enumerate(EVENTS):
        seats = SEATS[2 * i : 2 * i + 2]
        if draw(st.booleans()) or i == 0:
            events.append((EventType.SEATS_GENERATED, SeatsGenerated(
                concert_event_id=event_id,
                seats=tuple(GeneratedSeat(seat_id=s, section=("VIP", "GA")[j % 2], row="1",
                                          number=j + 1) for j, s in enumerate(seats)),
                total_seats=len(seats), generated_at=T0, schema_version=1,
            )))  # fmt: skip
    created: list[ReservationCreated] = []
    for reservation_id in draw(st.lists(st.sampled_from(RESERVATIONS), max_size=7, unique=True)):
        n += 1
        at = draw(times)
        ev = ReservationCreated(
            message_id=_msg(n), reservation_id=reservation_id,
            customer_id=draw(st.sampled_from(CUSTOMERS)), seat_id=draw(st.sampled_from(SEATS)),
            seat_number="X-1-1", section=draw(st.sampled_from([None, "VIP", "GA"])),
            base_price=draw(prices), created_at=at, expires_at=at + timedelta(minutes=15),
            status="active", schema_version=1,
        )  # fmt: skip
        created.append(ev)
        events.append((EventType.RESERVATION_CREATED, ev))
    for c in created:
        if draw(st.integers(0, 2)) == 0:
            n += 1
            events.append((EventType.RESERVATION_EXPIRED, ReservationExpired(
                message_id=_msg(n), reservation_id=c.reservation_id, seat_id=c.seat_id,
                customer_id=draw(st.sampled_from([c.customer_id, None])),
                concert_event_id=draw(st.sampled_from([None, *EVENTS])),
                expired_at=c.expires_at, reason=None, schema_version=3,
            )))  # fmt: skip
    if created:
        for order_id in draw(st.lists(st.sampled_from(ORDERS), max_size=3, unique=True)):
            picks = draw(st.lists(st.sampled_from(created), min_size=1, max_size=2,
                                  unique_by=lambda c: c.seat_id))  # fmt: skip
            items = tuple(OrderItem(reservation_id=c.reservation_id, seat_id=c.seat_id,
                                    price=draw(prices)) for c in picks)  # fmt: skip
            n += 1
            events.append((EventType.ORDER_PLACED, OrderPlaced(
                message_id=_msg(n), order_id=order_id, customer_id=picks[0].customer_id,
                items=items, total_amount=sum((i.price for i in items), Decimal(0)),
                currency="EUR", placed_at=draw(times), schema_version=1,
            )))  # fmt: skip
    # upstream duplicates: the same message again, later in the stream
    for kind, ev in list(events):
        if draw(st.integers(0, 5)) == 0:
            events.append((kind, ev))
    return events


def _key(kind: EventType, ev: object) -> str:
    if isinstance(ev, SeatsGenerated):
        return ev.concert_event_id
    if isinstance(ev, OrderPlaced):
        return ev.order_id
    return ev.seat_id  # type: ignore[attr-defined,no-any-return]


def partitioned(
    events: list[tuple[EventType, object]],
) -> dict[tuple[str, int], list[SourceRecord]]:
    """Cut events into 2 partitions per topic, keyed like upstream keys them."""
    logs: dict[tuple[str, int], list[SourceRecord]] = {}
    for kind, ev in events:
        partition = sum(map(ord, _key(kind, ev))) % 2
        log = logs.setdefault((kind.value, partition), [])
        log.append(SourceRecord(kind.value, partition, len(log), ev))  # type: ignore[arg-type]
    return logs


@dataclass
class Pipeline:
    """Ingest stage + seat stage + memory sink, stepped by the test."""

    sink: MemorySink = field(default_factory=MemorySink)
    states: dict[str, SeatState] = field(default_factory=dict)
    seat_logs: dict[int, list[list[SeatFact]]] = field(default_factory=dict)
    consumed: dict[int, int] = field(default_factory=dict)
    cache: dict[str, SeatState] | None = None
    """Decoded states kept between batches, changed in place (the worker's state cache);
    None: every batch decodes the saved bytes."""

    def ingest(self, records: list[SourceRecord]) -> None:
        facts = [
            f for r in records for f in facts_from_event(r.event, r.topic, r.partition, r.offset)
        ]
        for partition, batch in route(facts, SEAT_PARTITIONS).items():
            self.seat_logs.setdefault(partition, []).append(batch)

    async def consume(
        self,
        partition: int,
        count: int,
        redeliver: bool,
        whole: bool,
        reread: tuple[int, int] = (0, 0),
    ) -> None:
        """`whole`: the seat stage's per-range projection if the slice allows it (the sink
        needs every record of it: its position is `consumed`), else one entry per record.
        `reread` = (back, again): a seek back while the batch sat in the agent's buffer, so
        the batch also holds `again` records from `back` before its end on once more (some
        perhaps below `consumed`, the last not necessarily its last); the seat stage
        projects each once (`once_in_offset_order`)."""
        log = self.seat_logs.get(partition, [])
        start = self.consumed.get(partition, 0)
        read = [self._record(partition, o) for o in range(start, min(len(log), start + count))]
        if not read:
            return
        back, again = reread
        if back:
            end = read[-1].offset + 1
            first = max(0, end - back)
            read += [self._record(partition, o) for o in range(first, min(end, first + again))]
        records = once_in_offset_order(read)
        whole = whole and records[0].offset >= start  # workers/continuity.py needed_by_all
        if redeliver:  # the table was saved with these, then the worker died before the sinks
            self._project(records, whole=False)
            if self.cache is not None:
                self.cache = {}  # a new process
        projected = self._project(records, whole=whole)
        await self.sink.apply("seat-facts", projected.positioned)
        self.consumed[partition] = records[-1].offset + 1

    def _record(self, partition: int, offset: int) -> RawRecord:
        facts = self.seat_logs[partition][offset]
        return RawRecord("seat-facts", partition, offset, 0, None, encode_facts(facts))

    def _project(self, records: list[RawRecord], *, whole: bool) -> ProjectedPartition:
        # The saved bytes, decoded again: a state must survive the table's encoding.
        saved = {seat: encode_state(state) for seat, state in self.states.items()}
        cached = self.cache.get if self.cache is not None else lambda _seat_id: None
        projected = project_partition(records, saved.get, cached, whole=whole)
        self.states.update(projected.seat_states)
        if self.cache is not None:
            self.cache.update(projected.seat_states)
        return projected

    async def drain(self, whole: bool) -> None:
        for partition in range(SEAT_PARTITIONS):
            await self.consume(partition, 10**9, redeliver=False, whole=whole)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_sets(), data=st.data())
async def test_seat_projection_equals_reference_fold_for_any_interleaving(
    events: list[tuple[EventType, object]], data: st.DataObject
) -> None:
    logs = partitioned(events)
    expected = fold(r for log in logs.values() for r in log)

    pipeline = Pipeline(cache={} if data.draw(st.booleans(), label="state cache") else None)
    cursors = dict.fromkeys(logs, 0)
    while any(cursors[k] < len(logs[k]) for k in logs):
        open_logs = sorted(k for k in logs if cursors[k] < len(logs[k]))
        chosen = data.draw(st.sampled_from(open_logs), label="source partition")
        take = data.draw(st.integers(1, 3), label="ingest batch")
        records = logs[chosen][cursors[chosen] : cursors[chosen] + take]
        pipeline.ingest(records)
        if data.draw(st.integers(0, 6), label="ingest crash") == 0:
            pipeline.ingest(records)  # produced again: the crash came before the commit
        cursors[chosen] += len(records)
        if data.draw(st.booleans(), label="seat stage runs"):
            await pipeline.consume(
                data.draw(st.integers(0, SEAT_PARTITIONS - 1), label="seat partition"),
                data.draw(st.integers(1, 3), label="seat batch"),
                redeliver=data.draw(st.integers(0, 4), label="seat crash") == 0,
                whole=data.draw(st.booleans(), label="projected as one range"),
                reread=data.draw(
                    st.tuples(st.sampled_from([0, 0, 1, 2, 5]), st.integers(1, 5)),
                    label="read again (how far back, how many)",
                ),
            )
    await pipeline.drain(whole=data.draw(st.booleans(), label="drained as one range"))

    differences = pipeline.sink.snapshot().differences(expected)
    assert not differences, "\n".join(differences)


async def test_two_interleavings_give_identical_content() -> None:
    """A fixed, hand-made case: the order and the catalog before the creation they name."""
    seat, event = SEATS[0], EVENTS[0]
    only_seat = GeneratedSeat(seat_id=seat, section="VIP", row="1", number=1)
    sg = SeatsGenerated(
        concert_event_id=event, seats=(only_seat,), total_seats=1, generated_at=T0, schema_version=1
    )
    rc = ReservationCreated(
        message_id=_msg(1), reservation_id=RESERVATIONS[0], customer_id="c1", seat_id=seat,
        seat_number="VIP-1-1", section="VIP", base_price=Decimal("10.00"), created_at=T0,
        expires_at=T0 + timedelta(minutes=15), status="active", schema_version=1,
    )  # fmt: skip
    op = OrderPlaced(
        message_id=_msg(2), order_id=ORDERS[0], customer_id="c1",
        items=(OrderItem(reservation_id=RESERVATIONS[0], seat_id=seat, price=Decimal("10.00")),),
        total_amount=Decimal("10.00"), currency="EUR", placed_at=T0 + timedelta(minutes=1),
        schema_version=1,
    )  # fmt: skip
    snapshots = []
    for order in ([sg, rc, op], [op, rc, sg], [rc, op, sg]):
        for whole in (False, True):
            pipeline = Pipeline()
            for offset, ev in enumerate(order):
                pipeline.ingest([SourceRecord(ev.type.value, 0, offset, ev)])  # type: ignore[arg-type]
            await pipeline.drain(whole=whole)
            snapshots.append(pipeline.sink.snapshot())
    assert all(snapshot == snapshots[0] for snapshot in snapshots)
    assert snapshots[0].hashes[f"seat:{seat}"]["status"] == "ordered"
    assert snapshots[0].hashes[f"availability:{event}"] == {
        "total": "1", "available": "0", "reserved": "0", "ordered": "1", "VIP:available": "0",
    }  # fmt: skip
