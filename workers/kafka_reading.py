"""Reading partitions from their start up to fixed end offsets, for the commands that read
a topic and stop (`dlq list/show/redrive`, `verify`).

Two things every such loop must get right, in one place:

- **When a partition is done**: once the consumer's position reaches the end offset, not
  once a record at `end - 1` arrives. Offsets can have holes (transaction markers, which a
  fetch does not return; compaction), and a partition whose records retention has removed
  has nothing to arrive at all.
- **A broker that has gone away**: aiokafka's consumer retries it without end (a fetch
  returns nothing, a position waits), so a loop waiting for the end offsets would hang in
  silence. After `STALL_S` without an answer it raises `KafkaSilent`, which names what it
  was reading (the commands exit with code 3, "Kafka unreachable").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

T = TypeVar("T")

STALL_S = 60.0
"""How long a read waits for Kafka to answer before giving up."""


class KafkaSilent(TimeoutError):
    """Kafka did not answer for `STALL_S` while a command was reading."""


async def answered(request: Awaitable[T], what: str) -> T:
    """`request`, or `KafkaSilent` once Kafka has not answered it for `STALL_S`."""
    try:
        return await asyncio.wait_for(request, STALL_S)
    except TimeoutError:
        raise KafkaSilent(_silent(f"asking for {what}")) from None


async def read_to_ends(
    consumer: AIOKafkaConsumer,
    tps: Sequence[TopicPartition],
    ends: Mapping[TopicPartition, int],
    *,
    max_records: int,
) -> AsyncIterator[tuple[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]:
    """Assign `tps`, read them from the log start, and yield each fetched run of records
    below its partition's end offset, in offset order per partition (partitions
    interleaved), until every position has reached its end."""
    consumer.assign(list(tps))
    await consumer.seek_to_beginning(*tps)
    remaining = set()
    for tp in tps:
        if await answered(consumer.position(tp), f"the position of {_name(tp)}") < ends[tp]:
            remaining.add(tp)
    loop = asyncio.get_running_loop()
    heard = loop.time()
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=max_records)
        for tp, messages in batches.items():
            below = [m for m in messages if m.offset < ends[tp]]
            if below:
                yield tp, below
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
        if batches:
            heard = loop.time()
        elif remaining and loop.time() - heard > STALL_S:
            left = ", ".join(_name(tp) for tp in sorted(remaining))
            raise KafkaSilent(_silent(f"reading {left}"))


def _name(tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}"


def _silent(doing: str) -> str:
    return f"nothing from Kafka for {STALL_S:.0f}s while {doing} (broker down or unreachable?)"
