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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, MutableSequence
from typing import TYPE_CHECKING, Any

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP
from faust.utils.functional import consecutive_numbers

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
    Faust records them: they count as acknowledged. `acked` is sorted and trimmed in place,
    and `gaps` chopped, as Faust does."""
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
    acked.sort()
    if committed is not None and acked[0] > committed:
        return None  # a hole at the head: never commit past an unacknowledged record
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    return batch[-1] + 1


class SeatflowConsumer(Consumer):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed: Mapping[TP, int] = await super().seek_to_committed()
        rewind = never_committed(committed, self._is_changelog_tp)
        if rewind:
            # the keys are aiokafka's TopicPartitions, which its seek_to_beginning requires
            await self._thread.seek_to_beginning(*rewind)
            log.info("never committed, read from the beginning: %s", describe(rewind))
        return committed

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        before = list(acked)
        offset = next_commit(acked, self._committed_offset[tp], self._gap[tp])
        self._acked_index[tp].difference_update(set(before) - set(acked))
        return offset


def install(app: Any, consumer_class: type = SeatflowConsumer) -> None:
    """Make `app` create its consumer from `consumer_class` (before the consumer exists)."""
    app.transport.Consumer = consumer_class


def describe(tps: Iterable[Any]) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}" for tp in tps)
