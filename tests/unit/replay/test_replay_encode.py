"""The replay's shortcuts give exactly what the shared code gives: the state encoding
from the decoders' wire JSON, the facts rebuilt from it; the shadow's Redis pieces; the
batch sizes."""

from __future__ import annotations

from workers.loadgen.scenario import ScenarioShape, scenario
from workers.projection.batches import encode_state
from workers.projection.model import Mutations
from workers.projection.seat import SeatState
from workers.replay.fold import (
    BatchFold,
    PlainRecord,
    decode_chunk,
    decode_chunk_wire,
    encode_seat,
    plain,
)
from workers.replay.plan import DEFAULT_BATCH_EVENTS, SourcePartition, next_ranges
from workers.replay.runner import MAX_DEFAULT_DECODERS, POOL_MIN_EVENTS, default_decoders
from workers.replay.shadow import absolute_parts

from .test_fold import as_records, split


def _batches() -> list[list[PlainRecord]]:
    records = as_records(scenario(seed=5, shape=ScenarioShape(concert_events=2, reservations=400)))
    return [[plain(logical, r) for logical, r in batch] for batch in split(records, 300)]


def test_wire_chunks_fold_and_encode_like_plain_ones() -> None:
    wired: dict[str, SeatState] = {}
    plain_states: dict[str, SeatState] = {}
    for batch_no, batch in enumerate(_batches()):
        a, b = BatchFold(batch_no), BatchFold(batch_no)
        a.add_wire(decode_chunk_wire(batch))
        b.add(decode_chunk(batch))
        assert a.by_seat == b.by_seat
        a.project(wired, list(a.by_seat))
        b.project(plain_states, list(b.by_seat))
        assert a.changed == b.changed
        assert a.finish() == b.finish()
        for seat in a.changed:
            assert encode_seat(wired[seat], a.wires) == encode_state(plain_states[seat])
            assert encode_seat(wired[seat], a.wires) == encode_state(
                SeatState(seat, wired[seat].facts)
            )


def test_redis_value_parts_cover_the_batch_in_small_pieces() -> None:
    states: dict[str, SeatState] = {}
    for batch_no, batch in enumerate(_batches()):
        fold = BatchFold(batch_no)
        fold.add(decode_chunk(batch))
        fold.project(states, list(fold.by_seat))
        m = fold.finish()
        parts = list(absolute_parts(m, size=7))
        assert all(len(p.seats) + len(p.seatmap_set) + len(p.seatmap_del) <= 7 for p in parts)
        assert not any(p.availability or p.availability_fields for p in parts)
        together = Mutations()
        for part in parts:
            together.merge(part)
        assert together.seats == m.seats
        assert together.seatmap_set == m.seatmap_set
        assert together.seatmap_del == m.seatmap_del


def test_batches_are_full_but_the_last() -> None:
    """No ramp: every batch boundary costs a derivation and a write of the seats on both
    sides, so a run of a million records over uneven partitions takes as few batches as it can."""
    partitions = [SourcePartition("t", p, "x.t") for p in range(16)]
    positions = dict.fromkeys(partitions, 0)
    ends = {sp: 40_000 + 4_567 * sp.partition for sp in partitions}
    total = sum(ends.values())
    sizes = []
    while ranges := next_ranges(positions, ends, DEFAULT_BATCH_EVENTS):
        sizes.append(sum(hi - lo for lo, hi in ranges.values()))
        positions.update({sp: hi for sp, (_, hi) in ranges.items()})
    assert sum(sizes) == total
    assert len(sizes) == -(-total // DEFAULT_BATCH_EVENTS) == 5
    assert all(DEFAULT_BATCH_EVENTS - 16 <= size <= DEFAULT_BATCH_EVENTS for size in sizes[:-1])


def test_a_small_remainder_joins_the_last_batch() -> None:
    """Not a batch of its own: 1,001,023 records in four batches, not five."""
    a, b = SourcePartition("t", 0, "x.t"), SourcePartition("t", 1, "x.t")

    def sizes(ends: dict[SourcePartition, int], budget: int) -> list[int]:
        positions = dict.fromkeys(ends, 0)
        out = []
        while ranges := next_ranges(positions, ends, budget):
            out.append(sum(hi - lo for lo, hi in ranges.values()))
            positions.update({sp: hi for sp, (_, hi) in ranges.items()})
        assert positions == ends
        return out

    assert sizes({a: 3250}, 1000) == [1000, 1000, 1250]  # a quarter: joins
    assert sizes({a: 3251}, 1000) == [1000, 1000, 1000, 251]  # more: a batch of its own
    assert sizes({a: 1250, b: 0}, 1000) == [1250]
    four = sizes({a: 500_000, b: 501_023}, DEFAULT_BATCH_EVENTS)
    assert len(four) == 4 and sum(four) == 1_001_023 and max(four) < 252_000


def test_decoding_processes_by_default_one_per_core_up_to_a_few() -> None:
    assert default_decoders(1_000_000, 2) == 2  # not one fewer: see Options.decode_processes
    assert default_decoders(1_000_000, 64) == MAX_DEFAULT_DECODERS == 4
    assert default_decoders(1_000_000, None) == 1  # the core count is unknown
    assert default_decoders(POOL_MIN_EVENTS - 1, 8) == 0  # starting them costs more
