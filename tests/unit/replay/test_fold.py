"""The replay's batch fold against the reference fold, across batch sizes and a crash."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from aiokafka.structs import ConsumerRecord

from workers.decoding import DecodeError, decode
from workers.events import EventType
from workers.loadgen.scenario import ScenarioShape, UpstreamRecord, scenario
from workers.projection.batches import decode_state, encode_state
from workers.projection.seat import SeatState
from workers.replay.fold import POSITION_BASE, BatchFold, batch_bounds
from workers.sinks.base import PositionedMutations
from workers.sinks.memory import MemorySink
from workers.verify.reference import SourceRecord, fold
from workers.verify.snapshot import Snapshot

PARTITIONS = 4
TIMESTAMP = 1_795_000_000_000

Record = tuple[str, ConsumerRecord]


def as_records(upstream: Sequence[UpstreamRecord]) -> list[Record]:
    """(logical topic, record) as Kafka would hand them out, in produce order."""
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for r in upstream:
        partition = r.partition(PARTITIONS)
        offset = offsets.get((r.topic, partition), 0)
        offsets[(r.topic, partition)] = offset + 1
        out.append(
            (
                r.topic,
                ConsumerRecord(
                    r.topic, partition, offset, TIMESTAMP + offset, 0, r.key, r.value, None,
                    len(r.key), len(r.value), [],
                ),
            )
        )  # fmt: skip
    return out


def reference(records: Sequence[Record]) -> Snapshot:
    decoded = []
    for logical, r in records:
        try:
            event = decode(EventType(logical), r.value, r.key, [], r.timestamp)
        except DecodeError:
            continue
        decoded.append(SourceRecord(logical, r.partition, r.offset, event))
    return fold(decoded)


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return as_records(scenario(seed=13, shape=ScenarioShape(concert_events=3, reservations=1500)))


async def run_batches(
    states: dict[str, SeatState],
    batches: Sequence[Sequence[Record]],
    sinks: Sequence[MemorySink],
    first: int = 0,
) -> dict[str, bytes]:
    """Fold and apply batches numbered from `first`; return the states saved per seat."""
    saved: dict[str, bytes] = {}
    for number, batch in enumerate(batches, start=first):
        step = BatchFold(number)
        step.decode(batch)
        step.project(states, list(step.by_seat))
        for seat in step.changed:
            saved[seat] = encode_state(states[seat])
        for sink in sinks:
            await sink.apply("replay", [PositionedMutations(0, number, step.finish())])
    return saved


def split(records: Sequence[Record], size: int) -> list[Sequence[Record]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


@pytest.mark.parametrize("size", [1, 97, 1000, 100_000])
async def test_batches_of_any_size_fold_to_the_reference(records: list[Record], size: int) -> None:
    if size == 1:
        records = records[:600]  # one derivation per record: keep it short
    sink = MemorySink()
    await run_batches({}, split(records, size), [sink])
    assert not sink.snapshot().differences(reference(records))


async def test_a_crash_after_the_changelog_resumes_exactly(records: list[Record]) -> None:
    """States saved through batch 7, Redis-like sink applied through 3, Postgres-like
    through 5: the resumed run reads the states back and processes from batch 4."""
    batches = split(records, 250)
    fast, slow = MemorySink(), MemorySink()
    states: dict[str, SeatState] = {}
    saved = await run_batches(states, batches[:4], [fast, slow])
    saved |= await run_batches(states, batches[4:6], [fast], first=4)
    saved |= await run_batches(states, batches[6:8], [], first=6)  # died before its sinks

    recovered = {seat: decode_state(seat, value) for seat, value in saved.items()}
    resume_at = min([(await s.positions("replay")).get(0, 0) for s in (fast, slow)])
    assert resume_at == 4
    await run_batches(recovered, batches[resume_at:], [fast, slow], first=resume_at)

    expected = reference(records)
    assert not fast.snapshot().differences(expected)
    assert not slow.snapshot().differences(expected)


def test_replayed_positions_sort_before_live_ones_and_by_batch() -> None:
    low0, high0 = batch_bounds(0)
    low1, _ = batch_bounds(1)
    assert low0 < high0 == low1
    assert batch_bounds(10**9)[1] < (0, 0)  # the live worker's first position
    assert low0 == (-POSITION_BASE, 0)


async def test_a_duplicate_fact_adds_nothing_but_its_own_position_counts_again() -> None:
    upstream = scenario(seed=2, shape=ScenarioShape(concert_events=1, reservations=50))
    records = as_records(upstream)
    twice = [*records, *records[:20]]  # the same records (same ids) read again
    sink = MemorySink()
    await run_batches({}, split(twice, 40), [sink])
    assert not sink.snapshot().differences(reference(records))


def test_a_finished_batch_takes_no_more_seats(records: list[Record]) -> None:
    """`finish` settles the batch's mutations (zero counters dropped): a seat projected
    after it would add to a result already handed to the sinks."""
    fold = BatchFold(0)
    fold.decode(records[:200])
    seats = list(fold.by_seat)
    states: dict[str, SeatState] = {}
    fold.project(states, seats[:-1])
    assert fold.finish() is fold.finish()
    with pytest.raises(AssertionError, match="finished"):
        fold.project(states, seats[-1:])
