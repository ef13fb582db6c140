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

`read_topics` does all of it with a consumer of its own; `read_to_ends` with a given one.
Read with `reading_consumer`: it resets to the earliest offset, so that if retention
removes the segment being read, the position moves to the new log start rather than past
everything (aiokafka's default, "latest", would end the read early, silently short).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from workers.kafka_clients import client_kwargs
from workers.settings import Settings

STALL_S = 60.0
"""How long a read waits for Kafka to answer before giving up."""


def reading_consumer(settings: Settings, *, partition_fetch_bytes: int) -> AIOKafkaConsumer:
    """A consumer for `read_to_ends`: no group, nothing committed, earliest on a reset."""
    return AIOKafkaConsumer(
        **client_kwargs(settings), group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=partition_fetch_bytes,
        fetch_max_bytes=4 * partition_fetch_bytes, request_timeout_ms=30_000,
    )  # fmt: skip


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """`consumer.stop()`, without the CancelledError that aiokafka can raise from it when a
    broker is down (aio-libs/aiokafka#647): its fetcher's close cancels a fetch that is
    backing off after a failed request and awaits it, and the fetch does not catch the
    cancellation there. That is not a cancellation of this task, and it would hide the
    error being reported (`KafkaSilent`); it is swallowed unless this task is being
    cancelled. The consumer is left half-closed, which a command that ends anyway can
    afford."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


class KafkaSilent(TimeoutError):
    """Kafka did not answer for `STALL_S` while a command was reading."""


@asynccontextmanager
async def answering(what: str) -> AsyncIterator[None]:
    """Raise `KafkaSilent` (naming `what`) if the block waits on Kafka for `STALL_S`."""
    limit = asyncio.timeout(STALL_S)
    try:
        async with limit:
            yield
    except TimeoutError:
        if not limit.expired():
            raise
        raise KafkaSilent(_silent(what)) from None


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
    remaining = set()
    # One limit for both: `seek_to_beginning` waits up to the request timeout for the
    # reset and then returns without raising, and `position` then waits for ever.
    async with answering(f"asking for the log start of {', '.join(map(_name, tps))}"):
        await consumer.seek_to_beginning(*tps)
        for tp in tps:
            if await consumer.position(tp) < ends[tp]:
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
            # (a reset after retention removed the next records asks the broker)
            async with answering(f"asking for the position of {_name(tp)}"):
                position = await consumer.position(tp)
            if position >= ends[tp]:
                remaining.discard(tp)
        if batches:
            heard = loop.time()
        elif remaining and loop.time() - heard > STALL_S:
            left = ", ".join(_name(tp) for tp in sorted(remaining))
            raise KafkaSilent(_silent(f"reading {left}"))


async def read_topics(
    settings: Settings,
    tps: Sequence[TopicPartition],
    *,
    partition_fetch_bytes: int,
    max_records: int,
    one_partition_at_a_time: bool = False,
) -> AsyncIterator[tuple[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]:
    """`read_to_ends` of `tps` up to the end offsets they have now, with a consumer of its
    own (stopped when the reading ends, is closed or fails).

    `one_partition_at_a_time`: partition after partition, in the order of `tps`;
    otherwise all at once, interleaved (faster)."""
    consumer = reading_consumer(settings, partition_fetch_bytes=partition_fetch_bytes)
    await consumer.start()
    try:
        async with answering("asking for end offsets"):
            ends = await consumer.end_offsets(list(tps))
        for group in [[tp] for tp in tps] if one_partition_at_a_time else [tps]:
            async with aclosing(
                read_to_ends(consumer, group, ends, max_records=max_records)
            ) as runs:
                async for run in runs:
                    yield run
    finally:
        await stop_consumer(consumer)


def _name(tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}"


def _silent(doing: str) -> str:
    return f"nothing from Kafka for {STALL_S:.0f}s while {doing} (broker down or unreachable?)"
