"""Reading offset ranges of the source topics: one consumer, manual assignment, no group.

No `group_id`: the replay never joins or commits for any consumer group while it reads
(the live group is untouched; the new generation's group gets its offsets once, at the
handover, in swap.py). Large fetches: a batch is tens of thousands of records, and
aiokafka keeps fetching the next ones in the background while a batch is projected.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import OffsetOutOfRangeError
from aiokafka.structs import ConsumerRecord, TopicPartition

from workers.kafka_clients import client_kwargs
from workers.replay.plan import SourcePartition
from workers.settings import Settings

FETCH_MAX_BYTES = 64 * 1024 * 1024
PARTITION_FETCH_BYTES = 16 * 1024 * 1024
WAIT_REPORT_S = 30.0
"""While Kafka sends nothing of a range still to read, the reader says so this often.

A replay waits for a broker that has gone away (aiokafka retries it without end), as a
worker waits for a failing dependency: it is a long batch job, and it resumes where it
stopped anyway. But it must not wait in silence: its progress only moves per batch."""


class RecordsGone(Exception):
    """Records of a range are no longer in the log (exit code 2: refused).

    Retention deleted them while the replay read, or before a stopped replay resumed
    (or the topic was deleted and made again). Reading on from wherever the log now starts
    would build a copy over a gap that is not the fold of the topics, so the replay stops
    and says how to start over. Its message is its only argument: it crosses from a
    decoding process to this one by pickling."""


def records_gone(label: str, offset: int, log_start: int | None) -> RecordsGone:
    starts = "" if log_start is None else f" (the log now starts at {log_start:,})"
    return RecordsGone(
        f"{label}: the records from offset {offset:,} on are gone{starts}: retention "
        "deleted them while this replay read them or before it resumed (or the topic was "
        "truncated or made again), and a copy built over the gap would not be the fold of "
        "the topics. Discard this replay with `seatflow replay --abort`, then start it "
        "again: it reads what the log holds now (with --from a time well inside the "
        "retention if the log's start keeps moving)"
    )


async def log_start(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """Where the partition's log starts now, for the message (None if Kafka won't say)."""
    try:
        return (await consumer.beginning_offsets([tp]))[tp]
    except Exception:  # the refusal matters, not this detail
        return None


def consumer_for(
    settings: Settings, *, partition_fetch_bytes: int = PARTITION_FETCH_BYTES, **extra: Any
) -> AIOKafkaConsumer:
    """No offset reset: a range whose records are gone raises `OffsetOutOfRangeError`
    (aiokafka's default, `latest`, would jump to the end and finish the range short)."""
    return AIOKafkaConsumer(
        **client_kwargs(settings),
        enable_auto_commit=False,
        auto_offset_reset="none",
        fetch_max_bytes=FETCH_MAX_BYTES,
        max_partition_fetch_bytes=partition_fetch_bytes,
        fetch_max_wait_ms=100,
        **extra,
    )


class SourceReader:
    """Reads `[start, end)` ranges, batch after batch; records fetched beyond a range's end
    are kept for the next batch (which starts there)."""

    def __init__(
        self,
        settings: Settings,
        partitions: list[SourcePartition],
        on_wait: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.partitions = partitions
        self.on_wait = on_wait
        """Told when Kafka has sent nothing for `WAIT_REPORT_S` (again every
        `WAIT_REPORT_S`), and when it answers again."""
        self.consumer = consumer_for(settings)
        self._by_tp = {sp.tp: sp for sp in partitions}
        self._next: dict[SourcePartition, int] = {}
        self._carry: dict[SourcePartition, deque[ConsumerRecord]] = {}

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign([sp.tp for sp in self.partitions])

    async def stop(self) -> None:
        await self.consumer.stop()

    def pause(self) -> None:
        """Fetch nothing in the background (the decoding processes read the records)."""
        self.consumer.pause(*self.consumer.assignment())

    async def end_offsets(self) -> dict[SourcePartition, int]:
        ends = await self.consumer.end_offsets([sp.tp for sp in self.partitions])
        return {sp: ends[sp.tp] for sp in self.partitions}

    async def read(
        self, ranges: Mapping[SourcePartition, tuple[int, int]]
    ) -> dict[SourcePartition, list[ConsumerRecord]]:
        """The records of every range, in offset order per partition."""
        out: dict[SourcePartition, list[ConsumerRecord]] = {sp: [] for sp in ranges}
        active: set[SourcePartition] = set()
        for sp, (start, end) in ranges.items():
            carry = self._carry.setdefault(sp, deque())
            if self._next.get(sp) != start:
                self.consumer.seek(sp.tp, start)
                carry.clear()
                self._next[sp] = start
            self._drain(sp, carry, end, out[sp])
            if self._next[sp] < end:
                active.add(sp)
        consumer = self.consumer
        clock = asyncio.get_running_loop().time
        heard, reported = clock(), 0
        while active:
            # Only the partitions asked for: what is fetched for the others stays in
            # aiokafka's buffer, which is what makes the next batch's fetch overlap this
            # batch's projection.
            try:
                fetched = await consumer.getmany(*[sp.tp for sp in active], timeout_ms=500)
            except OffsetOutOfRangeError as exc:
                tp, offset = next(iter(exc.args[0].items()))
                sp = self._by_tp[tp]
                raise records_gone(sp.label, offset, await log_start(consumer, tp)) from None
            silent = clock() - heard
            if fetched:
                if reported:
                    self.on_wait(f"Kafka is answering again after {silent:.0f}s; reading on")
                heard, reported = clock(), 0
            elif silent >= WAIT_REPORT_S * (reported + 1):
                reported += 1
                self.on_wait(
                    f"nothing from Kafka for {silent:.0f}s while reading "
                    f"{', '.join(sp.label for sp in sorted(active))}; waiting for it "
                    "(a stopped run resumes from its checkpoints)"
                )
            for tp, records in fetched.items():
                sp = self._by_tp[tp]
                carry = self._carry[sp]
                carry.extend(records)
                self._drain(sp, carry, ranges[sp][1], out[sp])
            for sp in list(active):
                end = ranges[sp][1]
                # Offsets can have gaps (transaction markers): the position, not the last
                # record, says whether the range is complete.
                if self._next[sp] >= end or await consumer.position(sp.tp) >= end:
                    self._next[sp] = max(self._next[sp], end)
                    active.discard(sp)
        return out

    def _drain(
        self,
        sp: SourcePartition,
        carry: deque[ConsumerRecord],
        end: int,
        into: list[ConsumerRecord],
    ) -> None:
        """Move the records of [next, end) from the head of `carry` into `into`; what lies
        beyond `end` (fetched ahead, up to a whole fetch) stays for the next batch."""
        position = self._next[sp]
        while carry:
            offset = carry[0].offset
            if offset >= end:
                break
            record = carry.popleft()
            if offset >= position:
                into.append(record)
                position = offset + 1
        self._next[sp] = position
