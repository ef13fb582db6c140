"""The seat stage, apart from Faust: seat-facts records -> seat states + sink mutations.

Order of durability, per batch (the reason the read models never apply a fact twice):

1. project: decode the facts, apply them to the seat states (pure);
2. save the states to the table and *await* their changelog records;
3. apply the mutations to every sink, each atomically with its positions;
4. only then acknowledge the records (Faust commits acknowledged offsets).

A crash after 2 leaves the table ahead of the sinks: the records come again, the seat
state machine recognises each fact at its own position and yields the same mutations, and
each sink skips what its positions say it has. A crash after 3 re-delivers records every
sink skips.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from workers.deadletter import DeadLetter
from workers.errors import Policy, classify
from workers.observability.timing import MessageTiming, message_timing, oldest_event_time_ms
from workers.projection.batches import (
    FactsMessage,
    decode_facts,
    decode_state,
    encode_state,
    project,
)
from workers.projection.facts import SeatFact
from workers.projection.model import Mutations
from workers.projection.seat import Position, SeatState, apply_range
from workers.records import RawRecord
from workers.retry import Health, retry_until_done
from workers.sinks.base import PositionedMutations, Sink

log = logging.getLogger("seatflow.seats")


@dataclass(slots=True)
class ProjectedPartition:
    positioned: list[PositionedMutations] = field(default_factory=list)
    states: dict[str, bytes] = field(default_factory=dict)
    """Encoded states of the seats the batch touched, for the table and its changelog."""
    seat_states: dict[str, SeatState] = field(default_factory=dict)
    """The same states decoded, for the state cache."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    facts: int = 0
    timings: dict[tuple[int, int], MessageTiming] = field(default_factory=dict)
    """(partition, offset) -> when the message's facts entered the pipeline (for metrics)."""


def once_in_offset_order(records: list[RawRecord]) -> list[RawRecord]:
    """One partition's records of a batch, each offset once, in offset order (`records`
    itself when they already are: the usual case).

    A batch can hold records twice: a seek back (Faust's recovery seeking to the committed
    offset, `read_again` after a hole) re-delivers records while earlier copies still sit
    in the agent's take buffer. Projected as read, each copy would yield its entry (the
    second one replays the first's mutations, as a crash-resumed read must), and a range
    ending on a re-read record would stop short of the higher offsets read before it. The
    copies are the same record at the same position, so one of each, in order, is the
    whole batch.
    """
    if all(a.offset < b.offset for a, b in pairwise(records)):
        return records
    unique = {record.offset: record for record in reversed(records)}
    return [unique[offset] for offset in sorted(unique)]


def project_partition(
    records: Sequence[RawRecord],
    load: Callable[[str], bytes | None],
    cached: Callable[[str], SeatState | None] = lambda _seat_id: None,
    *,
    whole: bool = False,
) -> ProjectedPartition:
    """Project one partition's records, in offset order.

    A seat's state comes from `cached` (decoded states kept between batches) or else from
    `load` (its saved bytes in the table). States are changed in place.

    `whole`: every sink needs every one of `records` (each sink's position is at or below
    the first), so the slice may be applied as one unit: one entry of mutations at the
    last record's offset, computed per seat over the whole range (`seat.apply_range`,
    one derivation per seat instead of one per fact). Otherwise each record gets its own
    entry, so that a sink whose position falls inside the slice skips exactly what it has.
    """
    out = ProjectedPartition()
    states: dict[str, SeatState] = {}
    by_seat: dict[str, list[tuple[Position, SeatFact]]] = {}
    for record in records:
        try:
            facts = decode_facts(record.value or b"")
        except Exception as exc:
            if classify(exc) is not Policy.DEAD_LETTER:
                raise
            out.dead_letters.append(DeadLetter.from_exception(record, exc, str(exc), None))
            if not whole:
                out.positioned.append(
                    PositionedMutations(record.partition, record.offset, Mutations())
                )
            continue
        out.facts += len(facts)
        out.timings[(record.partition, record.offset)] = message_timing(
            record, oldest_event_time_ms(facts), len(facts)
        )
        if whole:
            offset = record.offset
            for index, fact in enumerate(facts):
                items = by_seat.get(fact.seat_id)
                if items is None:
                    items = by_seat[fact.seat_id] = []
                items.append(((offset, index), fact))
            continue
        for fact in facts:
            if fact.seat_id not in states:
                states[fact.seat_id] = _state_of(fact.seat_id, load, cached)
        positioned, _ = project(states, [FactsMessage(record.partition, record.offset, facts)])
        out.positioned.extend(positioned)
    if whole and records:
        last = records[-1]
        low, high = (records[0].offset, 0), (last.offset + 1, 0)
        total = Mutations()
        for seat_id, items in by_seat.items():
            state = states[seat_id] = _state_of(seat_id, load, cached)
            apply_range(state, items, low, high, total)
        total.drop_zero_counts()
        out.positioned.append(PositionedMutations(last.partition, last.offset, total))
    out.states = {seat_id: encode_state(state) for seat_id, state in states.items()}
    out.seat_states = states
    return out


def _state_of(
    seat_id: str, load: Callable[[str], bytes | None], cached: Callable[[str], SeatState | None]
) -> SeatState:
    state = cached(seat_id)
    return decode_state(seat_id, load(seat_id)) if state is None else state


async def apply_to_sinks(
    sinks: Sequence[Sink], topic: str, batch: Sequence[PositionedMutations], health: Health
) -> None:
    """Every sink applies the batch; each is retried on its own until it has, with the
    batch's seat-facts partitions paused meanwhile."""
    partitions = {(topic, entry.partition) for entry in batch}

    async def one(sink: Sink) -> None:
        await retry_until_done(
            lambda: sink.apply(topic, batch), what=f"{sink.name} sink", log=log, health=health,
            partitions=partitions,
        )  # fmt: skip

    await asyncio.gather(*(one(sink) for sink in sinks))
