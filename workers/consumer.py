"""Faust's Kafka consumer with two corrections to how it positions and commits partitions.

Faust can drop a fetched record without handing it to an agent: records of a partition it
holds paused during table recovery, records its stream skips because they belong to an
older consumer generation or arrive while its flow is suspended. It counts on a later seek
to the committed offset to read them again, and on its commit never passing an offset no
agent acknowledged. Two faults in that (both seen in this project's tests):

1. aiokafka's `seek_to_committed` seeks only partitions whose committed offset is above 0,
   so a partition no member of the group ever committed keeps its position past the
   dropped records, which are never read: the partition stalls with its lag frozen (the
   scale-out test). With `auto_offset_reset=earliest` (the worker's setting), a partition
   without a commit starts at the beginning of its log, so `seek_to_committed` seeks those
   there (`never_committed`).
2. Faust's `_new_offset` takes a hole at the head of the acknowledged offsets for a gap
   only when it is two offsets wide or more (`min(acked) - committed > 1`, with `committed`
   the next offset to read): a single dropped record right after the committed offset is
   committed past, and lost (a redriven reservation missing from the read models). Here
   any hole at the head holds the commit back (`next_commit`); `workers/continuity.py`
   then reads the partition again from the hole.

Faust's tolerance in 2 hides a fault of its own: offsets the log skips (transaction
markers, compaction) count as acknowledged through its "gaps", found by comparing each
record's offset with the last one read. After a seek it sets the last offset read to the
offset sought to, one too high, and it never lets a gap start at the committed offset, so
a marker right at the committed offset was never recorded and only the tolerance let the
commit pass it. With the tolerance gone that would hold the commit forever, so the
bookkeeping is made exact as well: after a seek the last offset read is the one before
(`last_read`), a gap may start at the committed offset, and it ends before the record just
read, which is no gap (`gap_between`; Faust counted that record as acknowledged too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, MutableSequence
from typing import TYPE_CHECKING, Any

from aiokafka.structs import TopicPartition
from faust.transport.consumer import ensure_TP
from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP
from faust.utils.functional import consecutive_numbers

from workers.continuity import ack_hole

if TYPE_CHECKING:
    from intervaltree import IntervalTree  # Faust's gap bookkeeping

log = logging.getLogger("seatflow.consumer")


def never_committed(
    committed: Mapping[Any, int | None], is_changelog: Callable[[Any], bool]
) -> list[Any]:
    """Stream partitions that `seek_to_committed` left where they were: no commit, or 0.

    Changelog partitions are the tables' business (recovery seeks them itself)."""
    return [tp for tp, offset in committed.items() if not offset and not is_changelog(tp)]


def next_commit(
    acked: MutableSequence[int], committed: int | None, gaps: IntervalTree
) -> int | None:
    """Faust's `Consumer._new_offset` without its off-by-one: the offset to commit next (the
    end of the run of acknowledged offsets starting at `committed`), or None.

    `gaps` are offset ranges the log itself skips (compaction, transaction markers), as
    Faust records them: they count as acknowledged. `acked` is sorted, deduplicated and
    trimmed in place, and `gaps` chopped, as Faust does."""
    if not acked:
        return None
    max_offset = max(acked)
    if gaps:
        candidates = sorted(gaps.overlap(0, max_offset), key=lambda interval: interval.begin)
        if candidates:
            filled: list[int] = []
            for interval in candidates:
                filled.extend(range(interval.begin, interval.end))
            acked.extend(filled)
            gaps.chop(0, max(filled[-1], max_offset + 1))
    # Each offset once, none below the committed one: a record read again (after a seek
    # back) can be acknowledged twice, and Faust's run of consecutive offsets would stop
    # at every repeat, committing a couple of offsets per commit interval.
    acked[:] = sorted({offset for offset in acked if committed is None or offset >= committed})
    if not acked:
        return None
    if committed is not None and acked[0] > committed:
        return None  # a hole at the head: never commit past an unacknowledged record
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    return batch[-1] + 1


def last_read(next_offset: int | None) -> int | None:
    """The last offset read before `next_offset`, as `_drain_messages` compares offsets
    with it (None: nothing read yet, no gap can be told)."""
    return next_offset - 1 if next_offset else None


def gap_between(last: int, offset: int, committed: int | None) -> tuple[int, int] | None:
    """[start, end) of the offsets the log skips between the record read last and the one
    at `offset`, none of them below the committed offset; None if there are none."""
    start = last + 1 if committed is None else max(last + 1, committed)
    return (start, offset) if start < offset else None


class SeatflowConsumer(Consumer):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed: Mapping[TP, int] = await super().seek_to_committed()
        rewind = never_committed(committed, self._is_changelog_tp)
        if rewind:
            # the keys are aiokafka's TopicPartitions, which its seek_to_beginning requires
            await self._thread.seek_to_beginning(*rewind)
            log.info("never committed, read from the beginning: %s", describe(rewind))
        return committed

    async def perform_seek(self) -> None:
        committed = await self.seek_to_committed()
        self._read_offset.update({tp: last_read(offset) for tp, offset in committed.items()})
        self._committed_offset.update(
            {
                ensure_TP(tp): offset or None
                for tp, offset in committed.items()
                if offset is not None
            }
        )

    async def seek(self, partition: TP, offset: int) -> None:
        await self._seek(partition, offset)
        self._read_offset[ensure_TP(partition)] = last_read(offset)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # Faust calls this with (last read + 1, offset of the record just read).
        gap = gap_between(offset_from - 1, offset_to, self._committed_offset[tp])
        if gap is not None:
            gaps = self._gap[tp]
            gaps.addi(*gap)
            await asyncio.sleep(0)  # as Faust does: let others run while gaps pile up
            gaps.merge_overlaps()

    def fetch_position(self, tp: TP) -> int | None:
        """The next offset aiokafka will fetch for `tp` (None if it has none yet)."""
        try:
            assignment = self._thread._consumer._subscription.subscription.assignment
            state = assignment.state_value(TopicPartition(tp.topic, tp.partition))
        except AttributeError:
            return None
        return getattr(state, "_position", None) if state is not None else None

    def passed_over(self, tp: TP, idle: bool) -> tuple[int, int] | None:
        """`continuity.ack_hole` of `tp`, from this consumer's bookkeeping."""
        return ack_hole(
            self._committed_offset.get(tp), self._acked.get(tp), self._gap.get(tp, ()),
            self.fetch_position(tp), idle,
        )  # fmt: skip

    def committed_offset(self, tp: TP) -> int | None:
        """The group's committed offset of `tp` as this consumer knows it: read at each
        assignment, then its own commits (None: none, or 0)."""
        return self._committed_offset.get(tp)

    async def read_from(self, topic: str, partition: int, offset: int) -> None:
        """Seek one partition back (aiokafka wants its own TopicPartition)."""
        await self.seek(TopicPartition(topic, partition), offset)

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        offset = next_commit(acked, self._committed_offset[tp], self._gap[tp])
        index = self._acked_index[tp]  # what `ack` checks for repeats: exactly what is left
        index.clear()
        index.update(acked)
        return offset


def install(app: Any, consumer_class: type = SeatflowConsumer) -> None:
    """Make `app` create its consumer from `consumer_class` (before the consumer exists)."""
    app.transport.Consumer = consumer_class


def describe(tps: Iterable[Any]) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}" for tp in tps)
