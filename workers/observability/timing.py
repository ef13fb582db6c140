"""Times that cross the seat-facts topic, for the latency histograms (pure, no Prometheus).

A fact is applied in another agent (often another process) than the one that decoded it,
so the ingest stage writes, per seat-facts message, when it decoded the batch and the
oldest Kafka record timestamp of that batch into Kafka *headers* of the message. Headers
leave the message format (`{"v":1,"facts":[...]}`) untouched: older messages without them,
and readers that ignore them, work as before. The cost is per ingest batch, not per fact.

The event time (the event's own `created_at`, `placed_at`, ...) is read from the facts by
the seat stage, which decodes them anyway.

Times are wall-clock milliseconds since the epoch: they are compared across processes, so a
monotonic clock cannot serve; latencies between hosts include their clock skew.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from workers.projection.facts import (
    CatalogFact,
    CreatedFact,
    ExpiredFact,
    OrderedFact,
    SeatFact,
)
from workers.records import RawRecord, header

DECODED_AT = "seatflow.decoded-at-ms"
"""When the ingest stage decoded the batch the message came from."""
SOURCE_TS_MIN = "seatflow.source-ts-min-ms"
"""The oldest Kafka record timestamp among the source records of that batch."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def timing_headers(
    records: Sequence[RawRecord], decoded_at_ms: int | None = None
) -> list[tuple[str, bytes]]:
    """Headers for every seat-facts message of one ingest batch."""
    out = [(DECODED_AT, str(now_ms() if decoded_at_ms is None else decoded_at_ms).encode())]
    stamps = [r.timestamp_ms for r in records if r.timestamp_ms > 0]
    if stamps:
        out.append((SOURCE_TS_MIN, str(min(stamps)).encode()))
    return out


def _int_header(headers: Sequence[tuple[str, bytes]], name: str) -> int | None:
    raw = header(headers, name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class MessageTiming:
    """What one seat-facts message says about when its facts entered the pipeline."""

    decoded_at_ms: int | None
    source_ts_ms: int | None
    event_time_ms: int | None = None
    facts: int = 0


def message_timing(
    record: RawRecord, event_time_ms: int | None = None, facts: int = 0
) -> MessageTiming:
    return MessageTiming(
        decoded_at_ms=_int_header(record.headers, DECODED_AT),
        source_ts_ms=_int_header(record.headers, SOURCE_TS_MIN),
        event_time_ms=event_time_ms,
        facts=facts,
    )


def source_timestamp_ms(headers: Sequence[tuple[str, bytes]]) -> int | None:
    """The oldest source record timestamp a seat-facts message carries, if it carries one."""
    return _int_header(headers, SOURCE_TS_MIN)


def fact_time(fact: SeatFact) -> float:
    """The event's own time, in seconds since the epoch."""
    if isinstance(fact, CreatedFact):
        return fact.created_at.timestamp()
    if isinstance(fact, OrderedFact):
        return fact.placed_at.timestamp()
    if isinstance(fact, ExpiredFact):
        return fact.expired_at.timestamp()
    if isinstance(fact, CatalogFact):
        return fact.generated_at.timestamp()
    raise TypeError(f"not a fact: {fact!r}")


def oldest_event_time_ms(facts: Iterable[SeatFact]) -> int | None:
    """The oldest event time of a message's facts (one pass, no allocation per fact)."""
    oldest: float | None = None
    for fact in facts:
        t = fact_time(fact)
        if oldest is None or t < oldest:
            oldest = t
    return None if oldest is None else int(oldest * 1000)
