"""What a replay reads: source topic-partitions and their offset ranges.

`--from` and `--to` accept `earliest` (from only), `latest` (to only; the default), an ISO
8601 datetime (no offset: UTC), or a duration back from now (`90s`, `15m`, `2h`, `3d`,
`1h30m`). A time T becomes, per partition, the offset of the first record whose Kafka
timestamp is at or after T (`offsets_for_times`), or the end offset when there is none:
`--from T` starts at the first record at/after T, `--to T` stops before it.

The offsets are resolved once, when the replay starts, and stored with it (shadow.py), so
a resumed replay reads exactly what the first run planned even if `--from 2h` would now
mean another instant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

EARLIEST = "earliest"
LATEST = "latest"

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


class PlanError(ValueError):
    """A `--from` / `--to` value that cannot be used; the message says why."""


def parse_point(text: str, *, now: datetime, allow: str) -> str | datetime:
    """`earliest` / `latest` (whichever `allow` names), or an aware UTC datetime."""
    value = text.strip()
    if value.lower() == allow:
        return allow
    match = _DURATION.fullmatch(value.lower())
    if match and any(match.groups()):
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return now - timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PlanError(
            f"{text!r}: expected {allow}, an ISO 8601 datetime (e.g. 2026-11-20T22:00:00Z) "
            "or a duration back from now (e.g. 90s, 15m, 2h, 3d, 1h30m)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def describe_point(point: str | datetime) -> str:
    return point if isinstance(point, str) else point.isoformat()


@dataclass(frozen=True, slots=True, order=True)
class SourcePartition:
    """A partition of a source topic: logical name (as fact ids name it) and physical."""

    logical: str
    partition: int
    topic: str = field(compare=False)

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @property
    def label(self) -> str:
        return f"{self.logical}/{self.partition}"


Offsets = dict[SourcePartition, int]


@dataclass(slots=True)
class Plan:
    """Per source partition, the offsets [start, end) to read; `end` may move (catch-up)."""

    starts: Offsets
    ends: Offsets

    def events(self, positions: Mapping[SourcePartition, int] | None = None) -> int:
        """Records between `positions` (default: the starts) and the ends."""
        at = positions or self.starts
        return sum(max(0, end - at[sp]) for sp, end in self.ends.items())

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "topic": sp.logical,
                "name": sp.topic,
                "partition": sp.partition,
                "start": self.starts[sp],
                "end": self.ends[sp],
                "events": max(0, self.ends[sp] - self.starts[sp]),
            }
            for sp in sorted(self.starts)
        ]


async def resolve(
    consumer: AIOKafkaConsumer,
    partitions: list[SourcePartition],
    point: str | datetime,
) -> Offsets:
    """The offset of `point` in each partition (see the module docstring)."""
    tps = [sp.tp for sp in partitions]
    ends = await consumer.end_offsets(tps)
    if point == EARLIEST:
        found = await consumer.beginning_offsets(tps)
        return {sp: found[sp.tp] for sp in partitions}
    if point == LATEST:
        return {sp: ends[sp.tp] for sp in partitions}
    assert isinstance(point, datetime)
    millis = int(point.timestamp() * 1000)
    found_at = await consumer.offsets_for_times(dict.fromkeys(tps, millis))
    return {
        sp: (found_at[sp.tp].offset if found_at.get(sp.tp) is not None else ends[sp.tp])
        for sp in partitions
    }


DEFAULT_BATCH_EVENTS = 250_000
"""The batch size, by default (see `runner.Options.batch_events`).

Every batch is this large (but the last): a seat is derived, encoded, saved and written
once per batch it appears in, so each batch boundary costs work. Smaller first and last
batches (to fill and drain the decode / fold / write pipeline sooner) cost more than they
saved: with decoding processes on every core, nothing waits long for the first batch."""

REMAINDER_SHARE = 4
"""What is left after a batch joins it when it is at most 1/`REMAINDER_SHARE` of a batch:
a last batch of a few records would cost a whole boundary and drain the pipeline once
more (1,001,023 records made four full batches and one of 1,023)."""


def next_ranges(
    positions: Mapping[SourcePartition, int], ends: Mapping[SourcePartition, int], budget: int
) -> dict[SourcePartition, tuple[int, int]]:
    """The next batch: about `budget` records, shared in proportion to what each partition
    has left, so that partitions finish together (and the batch mixes all topics, as the
    live stream does); everything left if that is at most a quarter more
    (`REMAINDER_SHARE`). Empty when nothing is left."""
    left = {sp: ends[sp] - positions[sp] for sp in ends if ends[sp] > positions[sp]}
    total = sum(left.values())
    if not total:
        return {}
    if total <= budget + budget // REMAINDER_SHARE:
        return {sp: (positions[sp], ends[sp]) for sp in sorted(left)}
    out = {}
    for sp in sorted(left):
        share = max(1, left[sp] * budget // total)
        out[sp] = (positions[sp], positions[sp] + min(share, left[sp]))
    return out
