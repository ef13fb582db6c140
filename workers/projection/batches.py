"""Batch-level pure steps around the seat state machine.

- `route`: facts -> the seat-facts partition of their seat, with Kafka's murmur2 partitioner
  (the one the Faust table's changelog uses), so the table and the stream stay
  co-partitioned;
- `encode_facts` / `decode_facts`: one seat-facts message carries many facts, so Faust's
  per-message cost is paid per batch, not per fact;
- `encode_state` / `decode_state`: a seat's state as stored in the Faust table;
- `project`: apply a batch of seat-facts messages to seat states, producing the positioned
  mutations the sinks apply.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import orjson

from workers.projection.facts import SeatFact, fact_from_wire, fact_to_wire
from workers.projection.model import Mutations
from workers.projection.murmur2 import murmur2
from workers.projection.seat import SeatState, apply
from workers.sinks.base import PositionedMutations

FACTS_FORMAT = 1
STATE_FORMAT = 1


@lru_cache(maxsize=1 << 18)
def partition_for_seat(seat_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives the key `seat_id` (utf-8).

    Cached: murmur2 is pure Python (~3 us a key; aiokafka's, ~6 us, was 3% of the worker's
    CPU in `bench/throughput.py`), and the same seats come back event after event.
    """
    return (murmur2(seat_id.encode()) & 0x7FFFFFFF) % partitions


def route(facts: Iterable[SeatFact], partitions: int) -> dict[int, list[SeatFact]]:
    """Group facts by the seat-facts partition of their seat, keeping their order."""
    routed: dict[int, list[SeatFact]] = {}
    for fact in facts:
        routed.setdefault(partition_for_seat(fact.seat_id, partitions), []).append(fact)
    return routed


def encode_facts(facts: Sequence[SeatFact]) -> bytes:
    return orjson.dumps({"v": FACTS_FORMAT, "facts": [fact_to_wire(f) for f in facts]})


class MalformedFactsError(ValueError):
    """A seat-facts message that is not one the ingest stage writes: a dead letter."""


def decode_facts(value: bytes) -> list[SeatFact]:
    """Raise MalformedFactsError for anything that is not a seat-facts message we wrote."""
    try:
        doc = orjson.loads(value)
        if doc.get("v") != FACTS_FORMAT:
            raise MalformedFactsError(f"unknown seat-facts format {doc.get('v')!r}")
        return [fact_from_wire(wire) for wire in doc["facts"]]
    except MalformedFactsError:
        raise
    except (ValueError, ArithmeticError, AttributeError, KeyError, IndexError, TypeError) as exc:
        # ValueError covers orjson's errors and bad ISO times; ArithmeticError, Decimal's.
        raise MalformedFactsError(f"malformed seat-facts message: {exc!r}") from exc


def encode_state(state: SeatState) -> bytes:
    """The table's form of a state; each fact is serialised once and reused (`state_json`)."""
    cache = state.encoded
    parts = []
    for pos, fact in state.facts:
        part = cache.get(fact.fact_id)
        if part is None:
            part = cache[fact.fact_id] = orjson.dumps([pos[0], pos[1], fact_to_wire(fact)])
        parts.append(part)
    return state_json(parts)


def state_json(parts: list[bytes]) -> bytes:
    """`orjson.dumps({"v": STATE_FORMAT, "facts": [...]})` of the facts' JSON, byte for byte
    (orjson writes no spaces), formatted directly: a state is re-encoded each time one of
    its facts is added, and wrapping each part as an `orjson.Fragment` for the encoder cost
    more than the formatting itself."""
    return b'{"v":%d,"facts":[%b]}' % (STATE_FORMAT, b",".join(parts))


def decode_state(seat_id: str, value: bytes | None) -> SeatState:
    if value is None:
        return SeatState(seat_id)
    doc = orjson.loads(value)
    if doc.get("v") != STATE_FORMAT:
        raise ValueError(f"seat {seat_id}: unknown state format {doc.get('v')!r}")
    return SeatState(
        seat_id, [((off, idx), fact_from_wire(wire)) for off, idx, wire in doc["facts"]]
    )


@dataclass(frozen=True, slots=True)
class FactsMessage:
    """One message of the seat-facts topic, decoded."""

    partition: int
    offset: int
    facts: Sequence[SeatFact]


def project(
    states: MutableMapping[str, SeatState], messages: Iterable[FactsMessage]
) -> tuple[list[PositionedMutations], set[str]]:
    """Apply messages in order; return one PositionedMutations per message and touched seats.

    `states` maps seat id to state and is updated in place; a missing seat starts empty.
    """
    out: list[PositionedMutations] = []
    touched: set[str] = set()
    for message in messages:
        total = Mutations()
        for index, fact in enumerate(message.facts):
            state = states.get(fact.seat_id)
            if state is None:
                state = states[fact.seat_id] = SeatState(fact.seat_id)
            total.merge(apply(state, fact, (message.offset, index)))
            touched.add(fact.seat_id)
        out.append(PositionedMutations(message.partition, message.offset, total))
    return out, touched
