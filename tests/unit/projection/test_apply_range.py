"""Property: a range of facts projected at once (`apply_range`, all seats into one set of
mutations) does what its facts projected one by one (`apply`) and merged do: the same
counter deltas exactly, and the same content once written. (Values may differ: a seat
reserved and freed again within the range is written once per fact one by one, not at
all at once.)

That is what lets the replay and the live seat stage project a batch per seat: the
telescoping of `diff`, the seats derived straight into the batch's mutations, and the
counters that sum to zero across seats removed once at the end, as `merge` removes them.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import datetime, timedelta
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
from workers.projection.facts import SeatFact, facts_from_event
from workers.projection.model import AVAILABLE, RESERVED, Mutations
from workers.projection.seat import Position, SeatState, apply, apply_range
from workers.sinks.memory import MemorySink

from .test_convergence_property import EVENTS, SEATS, T0, _msg, event_sets

Item = tuple[Position, SeatFact]


def positioned(events: list[tuple[EventType, object]]) -> list[Item]:
    out: list[Item] = []
    for offset, (kind, event) in enumerate(events):
        facts = facts_from_event(event, kind.value, 0, offset)  # type: ignore[arg-type]
        out += [((offset, index), fact) for index, fact in enumerate(facts)]
    return out


def one_by_one(states: dict[str, SeatState], items: list[Item]) -> Mutations:
    total = Mutations()
    for position, fact in items:
        state = states.setdefault(fact.seat_id, SeatState(fact.seat_id))
        total.merge(apply(state, fact, position))
    return total


def at_once(
    states: dict[str, SeatState], items: list[Item], low: Position, high: Position
) -> tuple[Mutations, bool]:
    """The range's mutations, and whether collecting them left a zero counter to drop."""
    by_seat: dict[str, list[Item]] = {}
    for item in items:
        by_seat.setdefault(item[1].seat_id, []).append(item)
    total = Mutations()
    for seat_id, seat_items in by_seat.items():
        state = states.setdefault(seat_id, SeatState(seat_id))
        apply_range(state, seat_items, low, high, total)
    counters = (total.availability, total.customer, total.daily, total.order_expired_items)
    zeros = any(not value for counts in counters for value in counts.values())
    total.drop_zero_counts()
    return total, zeros


def _bounds(items: list[Item]) -> tuple[Position, Position]:
    return (items[0][0][0], 0), (items[-1][0][0] + 1, 0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_sets(), data=st.data())
def test_a_range_at_once_equals_its_facts_one_by_one(
    events: list[tuple[EventType, object]], data: st.DataObject
) -> None:
    items = positioned(events)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(events) - 1)), max_size=4)))
    ranges: list[list[Item]] = []
    start = 0
    for cut in [*cuts, len(events)]:
        chunk = [item for item in items if start <= item[0][0] < cut]
        if chunk:
            ranges.append(chunk)
        start = cut
    mine: dict[str, SeatState] = {}
    theirs: dict[str, SeatState] = {}
    sink, reference = MemorySink(), MemorySink()
    for chunk in ranges:
        low, high = _bounds(chunk)
        saved = deepcopy(mine)  # the states as a crash would find them: saved before
        expected = one_by_one(theirs, chunk)
        got, _ = at_once(mine, chunk, low, high)
        assert counters(got) == counters(expected)
        # Processed again after a crash, before or after its states were saved: the same.
        assert at_once(saved, chunk, low, high)[0] == got
        assert at_once(deepcopy(mine), chunk, low, high)[0] == got
        sink.write(got)
        reference.write(expected)
        assert not sink.snapshot().differences(reference.snapshot())


def counters(m: Mutations) -> tuple[object, ...]:
    return (m.availability, m.customer, m.daily, m.order_expired_items, m.customer_seen)


def test_counters_that_cancel_across_seats_are_dropped() -> None:
    """Seat A's reservation expires (reserved -1) in the range in which seat B, new, is
    reserved (+1): one-by-one merging drops the zero as it goes, the range at the end."""
    items = positioned(_cancelling_events())
    first = [item for item in items if item[0][0] < 2]
    second = [item for item in items if item[0][0] >= 2]
    mine: dict[str, SeatState] = {}
    theirs: dict[str, SeatState] = {}
    for chunk, must_cancel in ((first, False), (second, True)):
        low, high = _bounds(chunk)
        expected = one_by_one(theirs, chunk)
        got, zeros = at_once(mine, chunk, low, high)
        assert zeros is must_cancel
        assert counters(got) == counters(expected)
    assert (EVENTS[0], RESERVED) not in got.availability
    assert got.availability[(EVENTS[0], AVAILABLE)] == 1


def generated(seat: str, number: int) -> SeatsGenerated:
    return SeatsGenerated(
        concert_event_id=EVENTS[0],
        seats=(GeneratedSeat(seat_id=seat, section="VIP", row="1", number=number),),
        total_seats=1, generated_at=T0, schema_version=1,
    )  # fmt: skip


def created(n: int, seat: str) -> ReservationCreated:
    return ReservationCreated(
        message_id=_msg(n), reservation_id=f"7e500000-0000-4000-8000-0000000000{n:02d}",
        customer_id="c3", seat_id=seat, seat_number="X-1-1", section="VIP",
        base_price=Decimal("12.50"), created_at=T0, expires_at=T0 + timedelta(minutes=15),
        status="active", schema_version=1,
    )  # fmt: skip


def _cancelling_events() -> list[tuple[EventType, object]]:
    a = created(1, SEATS[0])
    expired = ReservationExpired(
        message_id=_msg(3), reservation_id=a.reservation_id, seat_id=a.seat_id,
        customer_id="c3", concert_event_id=EVENTS[0], expired_at=a.expires_at, reason=None,
        schema_version=3,
    )  # fmt: skip
    return [
        (EventType.SEATS_GENERATED, generated(SEATS[0], 1)),
        (EventType.RESERVATION_CREATED, a),
        (EventType.RESERVATION_EXPIRED, expired),  # seat A: reserved -1, available +1
        (EventType.SEATS_GENERATED, generated(SEATS[1], 2)),  # seat B, new: available +1
        (EventType.RESERVATION_CREATED, created(2, SEATS[1])),  # then reserved: +1, -1
    ]


def test_an_order_told_twice_keeps_its_first_header_across_new_seats() -> None:
    """Two messages about one order name two new seats; the one of the smallest
    (placed_at, message_id) gives the header, whichever seat is derived last."""
    events = _cancelling_events()[:2]
    first = created(2, SEATS[1])
    second = created(4, SEATS[0])
    events += [
        (EventType.SEATS_GENERATED, generated(SEATS[1], 2)),
        (EventType.RESERVATION_CREATED, first),
        (EventType.RESERVATION_CREATED, second),
        # seat 0 is derived first: the header it gives must stay
        (EventType.ORDER_PLACED, placed(5, second, T0 + timedelta(minutes=1))),
        (EventType.ORDER_PLACED, placed(6, first, T0 + timedelta(minutes=2))),
    ]
    items = positioned(events)
    low, high = _bounds(items)
    got, _ = at_once({}, items, low, high)
    expected = one_by_one({}, items)
    assert got.order_headers == expected.order_headers
    assert got.order_headers[ORDER].message_id == _msg(5)


ORDER = "0d000000-0000-4000-8000-000000000001"


def placed(n: int, reservation: ReservationCreated, at: datetime) -> OrderPlaced:
    item = OrderItem(
        reservation_id=reservation.reservation_id, seat_id=reservation.seat_id,
        price=Decimal("12.50"),
    )  # fmt: skip
    return OrderPlaced(
        message_id=_msg(n), order_id=ORDER, customer_id="c3", items=(item,),
        total_amount=Decimal("12.50"), currency="EUR", placed_at=at, schema_version=1,
    )  # fmt: skip
