"""Redriving dead letters: sending them back through the projections, exactly once.

A redrive re-produces a dead letter's original key, value and headers to its source topic,
on the original partition and with the original timestamp, plus `seatflow.redrive.*`
headers. The one that matters is `seatflow.redrive.origin`, "<logical topic>/<partition>/
<offset>" of the ORIGINAL record: the ingest stage names the copy's facts after it
(`fact_position`), so the facts get the very ids the original would have had. Redriving
twice, or replaying the source topic after the fix (the original then decodes too), yields
facts the seat projection already has, and it ignores them: nothing changes the second
time.

Trust: a producer could set the header itself. It is honoured only when it names an
EARLIER offset of the SAME topic and partition, so the worst a forged header can do is
make its own record a duplicate of an earlier one; it can never suppress another record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from workers.deadletter import StoredDeadLetter
from workers.decoding import DecodeError, decode
from workers.events import EventType
from workers.projection.batches import MalformedFactsError, decode_facts
from workers.records import RawRecord

REDRIVE_PREFIX = "seatflow.redrive."
REDRIVE_ORIGIN = REDRIVE_PREFIX + "origin"
"""Where the original record was: "<logical topic>/<partition>/<offset>"."""
REDRIVE_ID = REDRIVE_PREFIX + "id"
"""The redrive run that sent this copy (one id per `seatflow dlq redrive` invocation)."""
REDRIVE_FROM = REDRIVE_PREFIX + "from"
"""The dead letter this copy was made from: "<dlq topic>/<partition>/<offset>"."""

_ORIGIN = re.compile(
    r"(?P<topic>[A-Za-z0-9._-]+)/(?P<partition>[0-9]{1,9})/(?P<offset>[0-9]{1,19})"
)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record was first read: logical topic, partition, offset."""

    topic: str
    partition: int
    offset: int

    def format(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Origin | None:
        match = _ORIGIN.fullmatch(text)
        if match is None:
            return None
        return cls(match["topic"], int(match["partition"]), int(match["offset"]))


def last_header(headers: Sequence[tuple[str, bytes | None]], name: str) -> bytes | None:
    """The last value of header `name` (the redrive tool appends its headers last)."""
    for key, value in reversed(headers):
        if key == name:
            return value
    return None


def redrive_origin(headers: Sequence[tuple[str, bytes | None]]) -> Origin | None:
    raw = last_header(headers, REDRIVE_ORIGIN)
    if not raw:
        return None
    try:
        return Origin.parse(raw.decode("ascii"))
    except UnicodeDecodeError:
        return None


def fact_position(record: RawRecord, logical_topic: str) -> tuple[int, int]:
    """(partition, offset) after which the record's facts are named.

    The record's own position, unless it is a redriven copy whose origin header names an
    earlier offset of the same logical topic and partition (see the module doc); a header
    that does not qualify is ignored (the copy is then at worst a content-level duplicate,
    which the projection rules also absorb).
    """
    origin = redrive_origin(record.headers)
    if (
        origin is not None
        and origin.topic == logical_topic
        and origin.partition == record.partition
        and origin.offset < record.offset
    ):
        return origin.partition, origin.offset
    return record.partition, record.offset


# ---------------------------------------------------------------- planning a redrive


@dataclass(frozen=True, slots=True)
class Redrive:
    """What redriving one dead letter sends, and whether the current decoder accepts it."""

    letter: StoredDeadLetter
    topic: str
    """Physical name of the source topic the copy goes to."""
    partition: int | None
    timestamp_ms: int | None
    headers: tuple[tuple[str, bytes], ...]
    origin: Origin | None
    rejection: str | None
    """Why the current decoder still rejects the record; None if it decodes now."""


def letter_origin(letter: StoredDeadLetter, logical_topic: str) -> Origin | None:
    """The ORIGINAL record's position: kept from an earlier redrive if this dead letter is
    a redriven copy that failed again, else the position the dead letter names."""
    earlier = redrive_origin(letter.original_headers)
    if earlier is not None and earlier.topic == logical_topic:
        return earlier
    partition, offset = letter.origin_partition, letter.origin_offset
    if partition is None or offset is None:
        return None
    return Origin(logical_topic, partition, offset)


def current_rejection(letter: StoredDeadLetter, logical_topic: str) -> str | None:
    """Decode the dead letter with the decoder of this process; the reason if it fails."""
    try:
        if logical_topic in EventType._value2member_map_:
            decode(
                EventType(logical_topic),
                letter.value,
                letter.key,
                letter.original_headers,
                letter.origin_timestamp_ms if letter.origin_timestamp_ms is not None else -1,
            )
        else:  # seat-facts: our own format
            decode_facts(letter.value or b"")
    except (DecodeError, MalformedFactsError) as exc:
        return str(exc)
    return None


def plan_redrive(
    letter: StoredDeadLetter,
    *,
    logical_topic: str,
    topic: str,
    partitions: int,
    run_id: str,
) -> Redrive:
    """The copy to send for `letter` to `topic` (the physical name of `logical_topic`)."""
    origin = letter_origin(letter, logical_topic)
    partition = origin.partition if origin is not None and origin.partition < partitions else None
    headers = [(k, v) for k, v in letter.original_headers if not k.startswith(REDRIVE_PREFIX)]
    if origin is not None:
        headers.append((REDRIVE_ORIGIN, origin.format().encode()))
    headers.append((REDRIVE_ID, run_id.encode()))
    headers.append(
        (REDRIVE_FROM, f"{letter.dlq_topic}/{letter.dlq_partition}/{letter.dlq_offset}".encode())
    )
    return Redrive(
        letter=letter,
        topic=topic,
        partition=partition,
        timestamp_ms=letter.origin_timestamp_ms,
        headers=tuple(headers),
        origin=origin,
        rejection=current_rejection(letter, logical_topic),
    )
