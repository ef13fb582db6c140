"""Faust's Kafka consumer, with "seek to committed" that also rewinds partitions never committed.

Faust drops records it fetched for a partition it holds paused (table recovery pauses the
stream partitions, yet aiokafka still returns their records) and relies on its final
"seek stream partitions to committed offsets" to read them again. aiokafka's
`seek_to_committed` only seeks partitions whose committed offset is above 0, so a
partition that no member of the group ever committed keeps the position past the dropped
records, and they are never read: the partition stalls with its lag frozen (seen in the
scale-out test, on a partition whose first records arrived just before its owner was
killed). With `auto_offset_reset=earliest` (the worker's setting), a partition without a
commit starts at the beginning of its log; this consumer seeks it there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP

log = logging.getLogger("seatflow.consumer")


def never_committed(
    committed: Mapping[Any, int | None], is_changelog: Callable[[Any], bool]
) -> list[Any]:
    """Stream partitions that `seek_to_committed` left where they were: no commit, or 0.

    Changelog partitions are the tables' business (recovery seeks them itself)."""
    return [tp for tp, offset in committed.items() if not offset and not is_changelog(tp)]


class RewindingConsumer(Consumer):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed: Mapping[TP, int] = await super().seek_to_committed()
        rewind = never_committed(committed, self._is_changelog_tp)
        if rewind:
            # the keys are aiokafka's TopicPartitions, which its seek_to_beginning requires
            await self._thread.seek_to_beginning(*rewind)
            log.info("never committed, read from the beginning: %s", describe(rewind))
        return committed


def install(app: Any, consumer_class: type = RewindingConsumer) -> None:
    """Make `app` create its consumer from `consumer_class` (before the consumer exists)."""
    app.transport.Consumer = consumer_class


def describe(tps: Iterable[Any]) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}" for tp in tps)
