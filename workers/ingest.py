"""The ingest stage, without I/O: raw records of one source topic -> seat-facts messages.

Decodes each record, dead-letters what cannot be decoded, cuts the rest into seat facts
and groups them by seat-facts partition: one message per partition per batch, so the seat
stage pays Faust's per-message cost once per batch, not once per fact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from workers.deadletter import DeadLetter
from workers.decoding import DecodeError, decode
from workers.events import EventType
from workers.projection.batches import encode_facts, route
from workers.projection.facts import SeatFact, facts_from_event
from workers.records import RawRecord

MAX_FACTS_PER_MESSAGE = 2000
"""Keeps a seat-facts message far below Kafka's 1 MB default (a fact is ~150-250 bytes)."""


@dataclass(slots=True)
class IngestResult:
    messages: list[tuple[int, bytes]] = field(default_factory=list)
    """(seat-facts partition, encoded facts), in the order to produce them."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    facts: int = 0


def ingest(records: Sequence[RawRecord], event_type: EventType, partitions: int) -> IngestResult:
    """Fact ids name the *logical* topic, so a replay under another prefix gives equal ids."""
    result = IngestResult()
    facts: list[SeatFact] = []
    for record in records:
        try:
            event = decode(
                event_type, record.value, record.key, record.headers, record.timestamp_ms
            )
        except DecodeError as exc:
            result.dead_letters.append(
                DeadLetter.from_exception(record, exc, exc.reason, exc.schema_version)
            )
            continue
        facts.extend(facts_from_event(event, event_type.value, record.partition, record.offset))
    result.facts = len(facts)
    for partition, routed in sorted(route(facts, partitions).items()):
        for start in range(0, len(routed), MAX_FACTS_PER_MESSAGE):
            chunk = routed[start : start + MAX_FACTS_PER_MESSAGE]
            result.messages.append((partition, encode_facts(chunk)))
    return result
