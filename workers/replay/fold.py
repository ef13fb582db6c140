"""One replay batch, pure: source records -> facts -> seat states + the batch's mutations.

The same steps as the live pipeline, without Kafka in the middle: `decode` (dead letters
are skipped: the live worker parked them already), `facts_from_event` with fact ids naming
the logical topic, partition and offset exactly as the ingest stage names them (redriven
copies after their original: `fact_position`), then the seat state machine.

Positions. A replayed fact is positioned at `(batch_no - POSITION_BASE, index in batch)`:

- monotone in processing order within a seat, because batches are processed in order and
  a batch's records in a fixed order (the recorded ranges, partitions sorted);
- identical when a batch is processed again after a crash, because its boundaries are
  recorded durably before it is processed (shadow.py);
- below (0, 0), because the next generation's live worker appends the facts it reads at
  (seat-facts offset, index) >= (0, 0): the replayed facts must come first.

Per seat and batch, not per fact. `seat.apply` computes a fact's mutations as
`diff(derive(facts before it), derive(facts up to it))`; summed over a batch's facts of one
seat those differences telescope to `diff(derive(facts before the batch), derive(facts up
to the end of the batch))`, which is what `seat.apply_range` computes: the same content once
applied (the sinks merge a batch into one write per key anyway), for one derivation per
seat per batch instead of one per fact. Duplicates follow `apply`: a fact already known
at another position adds nothing; one known at its own position (a batch processed again
after a crash, its state already saved) counts again, so the batch yields exactly the
mutations it yielded the first time, and the sinks' checkpoints decide what to apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord

from workers.decoding import DecodeError, decode
from workers.events import Event, EventType
from workers.projection.batches import state_json
from workers.projection.facts import (
    SeatFact,
    fact_from_wire,
    fact_to_wire,
    facts_from_event,
    wires_from_event,
)
from workers.projection.model import Mutations
from workers.projection.seat import Position, SeatState, apply_range
from workers.records import RawRecord
from workers.redrive import fact_position

POSITION_BASE = 2**62
"""Replayed positions are (batch_no - POSITION_BASE, index): negative, ordered by batch."""


def batch_bounds(batch_no: int) -> tuple[Position, Position]:
    """[low, high) of the positions of batch `batch_no`."""
    return (batch_no - POSITION_BASE, 0), (batch_no + 1 - POSITION_BASE, 0)


class BatchFold:
    """One batch, fed in chunks (the runner yields to the event loop between chunks, so
    the previous batch's sink writes progress meanwhile)."""

    def __init__(self, batch_no: int) -> None:
        self.batch_no = batch_no
        self.low, self.high = batch_bounds(batch_no)
        self.by_seat: dict[str, list[tuple[Position, SeatFact]]] = {}
        """The batch's facts, grouped by seat in processing order, with their positions."""
        self.events = 0
        self.facts = 0
        self.rejected = 0
        """Records the decoder rejects: dead letters of the live worker, skipped here."""
        self.collecting = Mutations()
        """The mutations of the seats projected so far (`seat.apply_range`)."""
        self.mutations: Mutations | None = None
        """The batch's mutations, once `finish` has settled them."""
        self.changed: list[str] = []
        """Seats whose state changed: what the changelog must receive before the sinks."""
        self.wires: dict[str, tuple[SeatFact, bytes]] = {}
        """Fact id -> (the fact, its wire form as JSON), for the facts decoded by worker
        processes (`add_wire`): `encode_seat` reuses the JSON instead of encoding it."""

    def add(self, decoded: DecodedChunk) -> None:
        """The next chunk of the batch, decoded (`decode_chunk`), in processing order:
        positions are given here, so chunks may be decoded anywhere."""
        events, rejected, facts = decoded
        by_seat = self.by_seat
        major = self.batch_no - POSITION_BASE
        index = self.facts
        for fact in facts:
            seat = by_seat.get(fact.seat_id)
            if seat is None:
                seat = by_seat[fact.seat_id] = []
            seat.append(((major, index), fact))
            index += 1
        self.facts = index
        self.events += events
        self.rejected += rejected

    def add_wire(self, decoded: WireChunk) -> None:
        """`add` for a chunk decoded by `decode_chunk_wire`: the facts are rebuilt from
        their wire form (cheaper than unpickling them) and the JSON kept for the state
        encoding."""
        events, rejected, encoded = decoded
        if not encoded:
            self.add((events, rejected, []))
            return
        facts = [fact_from_wire(wire) for wire in orjson.loads(b"[%b]" % b",".join(encoded))]
        wires = self.wires
        for fact, wire in zip(facts, encoded, strict=True):
            wires[fact.fact_id] = (fact, wire)
        self.add((events, rejected, facts))

    def decode(self, records: Iterable[tuple[str, ConsumerRecord]]) -> None:
        """Decode (logical topic, record) pairs here and `add` them."""
        self.add(decode_chunk([plain(logical, record) for logical, record in records]))

    def project(self, states: dict[str, SeatState], seats: Iterable[str]) -> None:
        """Apply the batch's facts of `seats` (keys of `by_seat`) to `states`; `finish`
        once all are."""
        assert self.mutations is None, "the batch is finished"
        into = self.collecting
        for seat_id in seats:
            state = states.get(seat_id)
            if state is None:
                state = states[seat_id] = SeatState(seat_id)
            if apply_range(state, self.by_seat[seat_id], self.low, self.high, into):
                self.changed.append(seat_id)

    def finish(self) -> Mutations:
        """The batch's mutations, once every seat is projected (counters that summed to
        zero removed: `seat.apply_range`)."""
        if self.mutations is None:
            self.collecting.drop_zero_counts()
            self.mutations = self.collecting
        return self.mutations


_TYPES = {t.value: t for t in EventType}

PlainRecord = tuple[str, str, int, int, int, bytes | None, bytes | None, tuple[Any, ...]]
"""(logical topic, topic, partition, offset, timestamp ms, key, value, headers): what a
decoding process is sent (cheaper to pickle than aiokafka's records)."""
DecodedChunk = tuple[int, int, list[SeatFact]]
"""(records, rejected records, facts in order)."""
WireChunk = tuple[int, int, list[bytes]]
"""(records, rejected records, the facts' wire forms as JSON, in order)."""


def plain(logical: str, r: ConsumerRecord) -> PlainRecord:
    return (
        logical, r.topic, r.partition, r.offset, r.timestamp, r.key, r.value,
        tuple(r.headers or ()),
    )  # fmt: skip


def decode_chunk(records: Sequence[PlainRecord]) -> DecodedChunk:
    """Decode records and cut them into facts, in order (pure; runs in a worker process).

    Fact ids name the logical topic, partition and offset, as the ingest stage does; a
    redriven copy is named after its original record (`fact_position`)."""
    facts: list[SeatFact] = []
    decoded = _Decoded(records)
    for event, logical, partition, offset in decoded:
        facts.extend(facts_from_event(event, logical, partition, offset))
    return len(records), decoded.rejected, facts


def decode_chunk_wire(records: Sequence[PlainRecord]) -> WireChunk:
    """`decode_chunk`, the facts in their wire form (`fact_to_wire`, as JSON): what a
    decoding process sends back.

    Why: pickling frozen slotted dataclasses is slow both ways (their `__setstate__` is
    Python), and the projecting process is the bottleneck. JSON is cheaper to ship and
    to turn back into facts there, and it is also the largest part of encoding the seat
    states for the changelog, which this moves into the decoding process (`encode_seat`).
    Facts survive the wire form exactly: the live pipeline ships them that way too. The
    wire lists are made from the events directly (`wires_from_event`).
    """
    encoded: list[bytes] = []
    decoded = _Decoded(records)
    for event, logical, partition, offset in decoded:
        encoded.extend(map(orjson.dumps, wires_from_event(event, logical, partition, offset)))
    return len(records), decoded.rejected, encoded


class _Decoded:
    """The decodable records' events with the position their facts are named after;
    counts the rejected ones."""

    def __init__(self, records: Sequence[PlainRecord]) -> None:
        self.records = records
        self.rejected = 0

    def __iter__(self) -> Iterator[tuple[Event, str, int, int]]:
        for logical, topic, partition, offset, timestamp, key, value, headers in self.records:
            try:
                event = decode(_TYPES[logical], value, key, headers, timestamp)
            except DecodeError:
                self.rejected += 1  # a dead letter of the live worker: parked already
                continue
            if headers:
                raw = RawRecord(
                    topic, partition, offset, timestamp, key, value,
                    tuple((str(k), bytes(v or b"")) for k, v in headers),
                )  # fmt: skip
                partition, offset = fact_position(raw, logical)
            yield event, logical, partition, offset


def encode_seat(state: SeatState, wires: Mapping[str, tuple[SeatFact, bytes]]) -> bytes:
    """`batches.encode_state(state)`, byte for byte, reusing the wire JSON of this batch's
    facts (`BatchFold.wires`) where `encode_state` would encode them again.

    A fact's part is `[offset, index, wire]`, formatted here as orjson would; a wire form
    is used only if it belongs to this very fact object (a duplicate fact id with other
    content, e.g. a redriven copy, is encoded from the fact in the state).
    """
    cache = state.encoded
    parts = []
    for (major, minor), fact in state.facts:
        part = cache.get(fact.fact_id)
        if part is None:
            known = wires.get(fact.fact_id)
            if known is not None and known[0] is fact:
                raw = b"[%d,%d,%b]" % (major, minor, known[1])
            else:
                raw = orjson.dumps([major, minor, fact_to_wire(fact)])
            part = cache[fact.fact_id] = raw
        parts.append(part)
    return state_json(parts)
