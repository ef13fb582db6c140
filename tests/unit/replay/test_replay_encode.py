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
from workers.replay.plan import RAMP_FIRST, batch_budget
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
        assert a.mutations == b.mutations
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
        m = fold.mutations
        parts = list(absolute_parts(m, size=7))
        assert all(len(p.seats) + len(p.seatmap_set) + len(p.seatmap_del) <= 7 for p in parts)
        assert not any(p.availability or p.availability_fields for p in parts)
        together = Mutations()
        for part in parts:
            together.merge(part)
        assert together.seats == m.seats
        assert together.seatmap_set == m.seatmap_set
        assert together.seatmap_del == m.seatmap_del


def test_batches_ramp_up_and_down() -> None:
    sizes, left, nth = [], 1_000_000, 0
    while left:
        size = min(left, batch_budget(250_000, nth, left))
        sizes.append(size)
        left, nth = left - size, nth + 1
    assert sizes[:4] == [RAMP_FIRST, 2 * RAMP_FIRST, 4 * RAMP_FIRST, 8 * RAMP_FIRST]
    assert max(sizes) == 250_000
    assert sizes[-1] <= RAMP_FIRST
    assert batch_budget(1000, 0, 10**6) == 1000  # a small --batch-events is the size
