"""The ingest stage, without I/O: raw records of one source topic -> seat-facts messages.

Decodes each record, dead-letters what cannot be decoded (the DEAD_LETTER class of
`workers.errors`; anything else propagates: a defect stops the worker), cuts the rest into
seat facts and groups them by seat-facts partition: one message per partition per batch,
so the seat stage pays Faust's per-message cost once per batch, not once per fact.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from workers.deadletter import DeadLetter
from workers.decoding import DecodeError, decode
from workers.errors import Policy, classify
from workers.events import EventType
from workers.projection.batches import encode_facts, route
from workers.projection.facts import SeatFact, facts_from_event
from workers.records import RawRecord
from workers.redrive import fact_position

MAX_FACTS_PER_MESSAGE = 2000
"""A seat-facts message holds at most this many facts (a fact is ~150-250 bytes)..."""
MAX_MESSAGE_BYTES = 512 * 1024
"""... and at most this many bytes: a valid fact can reach ~1.5 kB (a 128-character
section and a 64-character row, 4 bytes a character, appear twice in a catalog fact),
and a message must stay below Kafka's 1 MB default `max.message.bytes` of seat-facts."""


@dataclass(slots=True)
class IngestResult:
    messages: list[tuple[int, bytes]] = field(default_factory=list)
    """(seat-facts partition, encoded facts), in the order to produce them."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    facts: int = 0


def ingest(records: Sequence[RawRecord], event_type: EventType, partitions: int) -> IngestResult:
    """Fact ids name the *logical* topic, so a replay under another prefix gives equal ids;
    a redriven copy's facts are named after its original record (`fact_position`)."""
    result = IngestResult()
    facts: list[SeatFact] = []
    topic = event_type.value
    for record in records:
        try:
            event = decode(
                event_type, record.value, record.key, record.headers, record.timestamp_ms
            )
        except Exception as exc:
            if classify(exc) is not Policy.DEAD_LETTER:
                raise
            reason = exc.reason if isinstance(exc, DecodeError) else str(exc)
            version = exc.schema_version if isinstance(exc, DecodeError) else None
            result.dead_letters.append(DeadLetter.from_exception(record, exc, reason, version))
            continue
        partition, offset = fact_position(record, topic)
        facts.extend(facts_from_event(event, topic, partition, offset))
    result.facts = len(facts)
    for partition, routed in sorted(route(facts, partitions).items()):
        for start in range(0, len(routed), MAX_FACTS_PER_MESSAGE):
            chunk = routed[start : start + MAX_FACTS_PER_MESSAGE]
            result.messages.extend((partition, value) for value in _encoded(chunk))
    return result


def _encoded(facts: Sequence[SeatFact]) -> Iterator[bytes]:
    """`facts` as one message, or halves of it (recursively) if that is too large.

    Encoding once and splitting only when needed keeps the usual case at one encode.
    """
    value = encode_facts(facts)
    if len(value) <= MAX_MESSAGE_BYTES or len(facts) == 1:
        yield value
        return
    middle = len(facts) // 2
    yield from _encoded(facts[:middle])
    yield from _encoded(facts[middle:])
