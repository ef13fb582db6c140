"""The sink contract, run against MemorySink, PostgresSink and RedisSink alike.

Each test applies the same realistic batches (made by the real seat projection, see
scenario.py) to the sink under test and to a reference MemorySink, and requires equal
content for the part of the read models the sink owns.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.integration.sinks.conftest import Harness
from tests.integration.sinks.scenario import (
    EVENT,
    T0,
    TOPIC,
    Projector,
    batches,
    main_scenario,
    random_scenario,
    uid,
)
from workers.sinks.base import PositionedMutations, Sink
from workers.sinks.memory import MemorySink

pytestmark = pytest.mark.integration


async def apply_all(
    sink: Sink, entries: list[PositionedMutations], size: int, topic: str = TOPIC
) -> int:
    """Apply `entries` in batches of `size`, in order; return how many were applied."""
    applied = 0
    for batch in batches(entries, size):
        applied += (await sink.apply(topic, batch)).applied
    return applied


async def assert_same(h: Harness, reference: MemorySink) -> None:
    differences = (await h.read()).differences(await h.expected(reference))
    assert not differences, "\n".join(differences)


async def assert_applied_like_memory(
    h: Harness, entries: list[PositionedMutations], size: int
) -> None:
    """`entries` in batches of `size` to the sink and to MemorySink: the same content."""
    reference = MemorySink()
    await apply_all(reference, entries, size)
    await apply_all(h.sink, entries, size)
    await assert_same(h, reference)


@pytest.mark.parametrize("size", [1, 4, 1000])
async def test_batches_match_memory(harness: Harness, size: int) -> None:
    """(a) Whatever the batch size, the sink ends with MemorySink's content."""
    log = main_scenario().log
    await assert_applied_like_memory(harness, log, size)
    snap = await harness.read()
    assert snap.tables["orders"] if harness.has_tables else snap.hashes  # not vacuous


@pytest.mark.parametrize("seed", [1, 2])
async def test_busy_box_office_matches_memory(harness: Harness, seed: int) -> None:
    """(a) A seeded random workload (holds, orders, expiries, late and duplicate facts)
    through the real projection, in odd-sized batches, ends with MemorySink's content."""
    log = random_scenario(1500, seed=seed, events=2, seats_per_event=60, customers=15).log
    reference = MemorySink()
    await apply_all(reference, log, 37)
    assert await apply_all(harness.sink, log, 37) == len(log)
    await assert_same(harness, reference)


async def test_reapplying_changes_nothing(harness: Harness) -> None:
    """(b) A re-delivered batch is skipped; an overlapping one applies only what is new."""
    log = main_scenario().log
    reference = MemorySink()
    await reference.apply(TOPIC, log)

    first = await harness.sink.apply(TOPIC, log[:12])
    assert (first.applied, first.skipped) == (12, 0)
    before = await harness.read()
    again = await harness.sink.apply(TOPIC, log[:12])
    assert (again.applied, again.skipped) == (0, 12)
    assert not (await harness.read()).differences(before)

    overlap = await harness.sink.apply(TOPIC, log[6:])
    assert (overlap.applied, overlap.skipped) == (len(log) - 12, 6)
    await assert_same(harness, reference)
    tail = await harness.sink.apply(TOPIC, log[-3:])
    assert (tail.applied, tail.skipped) == (0, 3)
    await assert_same(harness, reference)


async def test_entries_read_twice_in_one_batch_apply_once(harness: Harness) -> None:
    """(b) A batch that holds entries twice (records read again after a seek back while
    the first copies sat in the agent's buffer) applies each once: counters too."""
    log = main_scenario().log
    reference = MemorySink()
    await reference.apply(TOPIC, log)

    await harness.sink.apply(TOPIC, log[:4])
    # after the sink's position: 4..9, then a seek back to 2 re-reads 2..7, then 10..
    twice = [*log[4:10], *log[2:8], *log[10:]]
    result = await harness.sink.apply(TOPIC, twice)
    assert (result.applied, result.skipped) == (len(log) - 4, 6)
    await assert_same(harness, reference)


async def test_positions(harness: Harness) -> None:
    """(c) Next offset per partition, per topic; empty entries advance positions too."""
    assert await harness.sink.positions(TOPIC) == {}
    projector = main_scenario(partitions=3)
    await apply_all(harness.sink, projector.log, 5)
    assert await harness.sink.positions(TOPIC) == projector.next_offsets
    assert any(entry.mutations.is_empty() for entry in projector.log)
    assert await harness.sink.positions("another-topic") == {}

    # Positions are per topic: the same entries under another topic apply again there.
    result = await harness.sink.apply("another-topic", projector.log[:2])
    assert result.applied == 2
    assert await harness.sink.positions(TOPIC) == projector.next_offsets


async def test_money_exact_to_the_cent(harness: Harness) -> None:
    """(d) 30 prices of 0.10 sum to exactly 3 (binary floats would give 3.0000000000000004)."""
    p = Projector(partitions=2)
    for n in range(30):
        seat_id, reservation = uid(f"cent-seat:{n}"), uid(f"cent-res:{n}")
        p.catalog(seat_id, EVENT, "C", f"C-1-{n}")
        p.created(seat_id, reservation, "penny", T0, price="0.10", section="C")
        p.ordered(uid(f"cent-order:{n}"), [(seat_id, reservation, "0.10")], "penny", T0)
    await assert_applied_like_memory(harness, p.log, 7)
    if harness.has_tables:
        snap = await harness.read()
        assert snap.tables["customer_activity"][("penny",)][4] == Decimal("3")
        assert snap.tables["event_sales_daily"][(EVENT, "C", T0.date())][3] == Decimal("3")


async def test_amounts_in_every_spelling_are_written_exactly(harness: Harness) -> None:
    """Amounts whose `str` is not plain digits (exponents, a negative zero, many digits):
    the staged PostgreSQL sink sends amounts as that text, which must read back as the
    same number."""
    prices = ["1E+2", "0E-8", "-0.00", "12345678901234.123456789", "0.000001", "7.5000"]
    p = Projector(partitions=2)
    for n, price in enumerate(prices):
        seat_id, reservation = uid(f"spelling-seat:{n}"), uid(f"spelling-res:{n}")
        p.catalog(seat_id, EVENT, "S", f"S-1-{n}")
        p.created(seat_id, reservation, "speller", T0, price=price, section="S")
        p.ordered(uid(f"spelling-order:{n}"), [(seat_id, reservation, price)], "speller", T0)
    await assert_applied_like_memory(harness, p.log, 5)
    if harness.has_tables:
        rows = (await harness.read()).tables["reservations"]
        assert sorted(row[5] for row in rows.values()) == sorted(map(Decimal, prices))


@pytest.mark.parametrize("first", ["early", "late"])
async def test_order_header_min_wins_in_any_order(harness: Harness, first: str) -> None:
    """(e) Two order-placed messages disagree about one order: the smallest
    (placed_at, message_id) wins, whichever arrives first; equal times fall back to the
    message id."""
    order = uid("order:conflict")
    seats = [uid("conflict-seat:1"), uid("conflict-seat:2"), uid("conflict-seat:3")]
    res = [uid("conflict-res:1"), uid("conflict-res:2"), uid("conflict-res:3")]
    small_id, big_id = sorted([uid("m:a"), uid("m:b")])
    p = Projector(partitions=4)
    for i, seat_id in enumerate(seats):
        p.created(seat_id, res[i], "buyer", T0, section="A")
    base = len(p.log)
    early = p.ordered(order, [(seats[0], res[0], "10")], "buyer", T0, message=big_id)
    late = p.ordered(order, [(seats[1], res[1], "20")], "other", T0 + timedelta(1), total="99")
    tie = p.ordered(order, [(seats[2], res[2], "30")], "tie", T0, message=small_id)
    assert len(p.log) == base + 3
    ordered = [*early, *late, *tie] if first == "early" else [*tie, *late, *early]

    reference = MemorySink()
    for entry in [*p.log[:base], *ordered]:
        await reference.apply(TOPIC, [entry])
        await harness.sink.apply(TOPIC, [entry])
    await assert_same(harness, reference)
    if harness.has_tables:
        header = (await harness.read()).tables["orders"][(order,)]
        assert header == ("tie", "placed", 1, Decimal("30"), "EUR", T0)


async def test_daily_rows_back_to_zero_are_deleted(harness: Harness) -> None:
    """(f) A re-generated catalog moves a seat to section B: section A's daily row goes
    back to all zeros and must disappear, as if it had never existed."""
    p = Projector(partitions=2)
    seat_id, reservation = uid("moving-seat"), uid("moving-res")
    p.catalog(seat_id, EVENT, "A", "A-9-9")
    p.created(seat_id, reservation, "mover", T0 + timedelta(hours=1))  # section from catalog
    p.catalog(seat_id, EVENT, "B", "B-9-9", at=T0 + timedelta(hours=2))
    reference = MemorySink()
    await apply_all(reference, p.log, 1)
    await apply_all(harness.sink, p.log, 1)
    await assert_same(harness, reference)
    if harness.has_tables:
        daily = (await harness.read()).tables["event_sales_daily"]
        assert list(daily) == [(EVENT, "B", T0.date())]

    # The same facts in one batch never create section A's row at all: same content.
    fresh = MemorySink()
    await fresh.apply(TOPIC, p.log)
    assert not reference.snapshot().differences(fresh.snapshot())


async def test_empty_batch_and_empty_mutations(harness: Harness) -> None:
    """An empty batch is a no-op; entries without mutations only advance positions."""
    assert (await harness.sink.apply(TOPIC, [])).applied == 0
    p = main_scenario()
    empties = [e for e in p.log if e.mutations.is_empty()]
    assert empties
    before = await harness.read()
    result = await harness.sink.apply(TOPIC, empties)
    assert result.applied == len(empties)
    assert not (await harness.read()).differences(before)
    assert await harness.sink.positions(TOPIC) == {empties[-1].partition: empties[-1].offset + 1}


async def test_two_writers_race_for_the_same_batches(racing_harness: Harness) -> None:
    """Two workers (e.g. around a rebalance) apply the same stream at once, each in order
    and with its own batch boundaries: every entry is applied exactly once in total, and
    the content is MemorySink's."""
    harness = racing_harness
    assert harness.another is not None
    log = main_scenario().log
    reference = MemorySink()
    await reference.apply(TOPIC, log)
    other = await harness.another()
    mine, theirs = await asyncio.gather(apply_all(harness.sink, log, 3), apply_all(other, log, 5))
    assert mine + theirs == len(log)
    await assert_same(harness, reference)
    assert await harness.sink.positions(TOPIC) == await reference.positions(TOPIC)
