"""Reading offset ranges of the source topics: one consumer, manual assignment, no group.

No `group_id`: the replay never joins or commits for any consumer group while it reads
(the live group is untouched; the new generation's group gets its offsets once, at the
handover, in swap.py). Large fetches: a batch is tens of thousands of records, and
aiokafka keeps fetching the next ones in the background while a batch is projected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from workers.kafka_clients import client_kwargs
from workers.replay.plan import SourcePartition
from workers.settings import Settings

FETCH_MAX_BYTES = 64 * 1024 * 1024
PARTITION_FETCH_BYTES = 16 * 1024 * 1024


def consumer_for(settings: Settings, **extra: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_kwargs(settings),
        enable_auto_commit=False,
        fetch_max_bytes=FETCH_MAX_BYTES,
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
        fetch_max_wait_ms=100,
        **extra,
    )


class SourceReader:
    """Reads `[start, end)` ranges, batch after batch; records fetched beyond a range's end
    are kept for the next batch (which starts there)."""

    def __init__(self, settings: Settings, partitions: list[SourcePartition]) -> None:
        self.partitions = partitions
        self.consumer = consumer_for(settings)
        self._by_tp = {sp.tp: sp for sp in partitions}
        self._next: dict[SourcePartition, int] = {}
        self._carry: dict[SourcePartition, list[ConsumerRecord]] = {}

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign([sp.tp for sp in self.partitions])

    async def stop(self) -> None:
        await self.consumer.stop()

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
            carried = self._carry.pop(sp, [])
            if self._next.get(sp) != start:
                self.consumer.seek(sp.tp, start)
                carried = []
            else:
                carried = [r for r in carried if r.offset >= start]
            self._next[sp] = start
            for record in carried:
                self._take(sp, record, end, out)
            if self._next[sp] < end:
                active.add(sp)
        consumer = self.consumer
        while active:
            # Only the partitions asked for: what is fetched for the others stays in
            # aiokafka's buffer, which is what makes the next batch's fetch overlap this
            # batch's projection.
            fetched = await consumer.getmany(*[sp.tp for sp in active], timeout_ms=500)
            for tp, records in fetched.items():
                sp = self._by_tp[tp]
                end = ranges[sp][1]
                for record in records:
                    self._take(sp, record, end, out)
            for sp in list(active):
                end = ranges[sp][1]
                # Offsets can have gaps (transaction markers): the position, not the last
                # record, says whether the range is complete.
                if self._next[sp] >= end or await consumer.position(sp.tp) >= end:
                    self._next[sp] = max(self._next[sp], end)
                    active.discard(sp)
        return out

    def _take(
        self,
        sp: SourcePartition,
        record: ConsumerRecord,
        end: int,
        out: dict[SourcePartition, list[ConsumerRecord]],
    ) -> None:
        if record.offset < self._next[sp]:
            return
        if record.offset >= end:
            self._carry.setdefault(sp, []).append(record)
            return
        out[sp].append(record)
        self._next[sp] = record.offset + 1
