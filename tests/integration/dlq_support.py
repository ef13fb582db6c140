"""Helpers of the dead-letter, outage and redrive tests (beside harness.py, which they use).

Producing arbitrary records (null keys, headers, ~1 MB values), reading the dead-letter
topics back, reading consumer-group and sink positions, and the seat table's changelog.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.harness import WorkerProcess
from workers.app import SEAT_FACTS, SEATS_CHANGELOG
from workers.commands.dlq import read_dead_letters
from workers.deadletter import StoredDeadLetter
from workers.dlq_query import Selection
from workers.projection.batches import decode_state
from workers.projection.seat import SeatState
from workers.settings import Settings
from workers.sinks.postgres_sink import PostgresSink
from workers.sinks.redis_sink import RedisSink
from workers.topic_catalog import TopicRole, load_catalog
from workers.verify.topics import partitions_of


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to produce to a source topic (logical name), exactly as given."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    def partition(self, partitions: int) -> int:
        """librdkafka's consistent partitioner: crc32 of the key (a null key: 0)."""
        return zlib.crc32(self.key) % partitions if self.key is not None else 0


async def produce_records(
    settings: Settings, records: Sequence[Outgoing]
) -> list[tuple[str, int, int]]:
    """Produce in order; return each record's (physical topic, partition, offset)."""
    catalog = load_catalog(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5,
        max_request_size=2 * 1024 * 1024, max_batch_size=256 * 1024,
    )  # fmt: skip
    await producer.start()
    try:
        futures = []
        for record in records:
            spec = catalog.get(record.topic)
            if record.key is None and record.value is None:
                futures.append(await _send_null_record(producer, spec.name))
                continue
            futures.append(
                await producer.send(
                    spec.name, record.value, key=record.key,
                    partition=record.partition(spec.partitions), headers=list(record.headers),
                )
            )  # fmt: skip
        done = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.topic, m.partition, m.offset) for m in done]


async def _send_null_record(producer: AIOKafkaProducer, topic: str) -> asyncio.Future[Any]:
    """A record with neither key nor value, as librdkafka (the .NET producers) can send
    one; aiokafka's `send` asserts against it, so this goes one level below it."""
    await producer.client._wait_on_metadata(topic)
    future: asyncio.Future[Any] = await producer._message_accumulator.add_message(
        TopicPartition(topic, 0), None, None, 30.0, timestamp_ms=None, headers=[]
    )
    return future


async def dead_letters(settings: Settings) -> list[StoredDeadLetter]:
    """Every record of every dead-letter topic of `settings`."""
    topics = frozenset(s.name for s in load_catalog(settings).by_role(TopicRole.DEAD_LETTER))
    return await read_dead_letters(settings, Selection(topics=topics))


async def committed(settings: Settings, topic: str) -> dict[int, int]:
    """The consumer group's committed offset per partition of `topic` (absent: 0)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.consumer_group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def sink_positions(settings: Settings, sink: str) -> dict[int, int]:
    """Next seat-facts offset to apply per partition, as the sink itself records it."""
    topic = load_catalog(settings).get(SEAT_FACTS).name
    if sink == "postgres":
        postgres = await PostgresSink.connect(settings)
        try:
            return await postgres.positions(topic)
        finally:
            await postgres.close()
    redis = await RedisSink.connect(settings)
    try:
        return await redis.positions(topic)
    finally:
        await redis.close()


async def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    tps = await partitions_of(settings, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}


async def read_topic(
    settings: Settings, topic: str
) -> list[tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    """Every record of `topic`: (partition, offset, key, value, headers)."""
    tps = await partitions_of(settings, [topic])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    out = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for tp, messages in batches.items():
                for m in messages:
                    if m.offset < ends[tp]:
                        out.append((tp.partition, m.offset, m.key, m.value, list(m.headers)))
                if messages and messages[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return out


async def seat_states(settings: Settings) -> dict[str, SeatState]:
    """The seat table as its changelog holds it: the latest state per seat."""
    name = load_catalog(settings).get(SEATS_CHANGELOG).name
    latest: dict[bytes, bytes | None] = {}
    for _p, _o, key, value, _h in await read_topic(settings, name):
        assert key is not None
        latest[key] = value
    return {
        key.decode(): decode_state(key.decode(), value)
        for key, value in latest.items()
        if value is not None
    }


def log_lines(worker: WorkerProcess, pattern: str) -> list[str]:
    """Lines of the worker's log matching the regular expression `pattern`."""
    text = worker.log_path.read_text(errors="replace") if worker.log_path.exists() else ""
    return [line for line in text.splitlines() if re.search(pattern, line)]


def fatal_lines(worker: WorkerProcess) -> list[str]:
    """Lines saying the worker stopped on an error no rule covers (or any CRITICAL)."""
    return log_lines(worker, r"no rule covers|CRITICAL|Traceback")
