"""Read the source topics end to end and fold them: what the read models must contain.

The checker behind the integration tests, the fault-injection suite and
`seatflow verify`: it shares the decoder with the workers but none of their state,
batching, partitioning or sinks.
"""

from __future__ import annotations

from contextlib import aclosing

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from workers.decoding import DecodeError, decode
from workers.events import EventType
from workers.kafka_clients import client_kwargs
from workers.kafka_reading import read_topics
from workers.settings import Settings
from workers.topic_catalog import TopicCatalog
from workers.verify.reference import SourceRecord, fold
from workers.verify.snapshot import Snapshot


async def partitions_of(settings: Settings, topics: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return sorted(
        TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
    )


async def read_sources(settings: Settings, catalog: TopicCatalog) -> list[SourceRecord]:
    """Every decodable record of every source topic, up to the end offsets seen at start."""
    logical = {spec.name: spec.logical for spec in catalog.sources()}
    tps = await partitions_of(settings, list(logical))
    out: list[SourceRecord] = []
    runs = read_topics(settings, tps, partition_fetch_bytes=8 * 1024 * 1024, max_records=10_000)
    async with aclosing(runs):
        async for tp, messages in runs:
            kind = EventType(logical[tp.topic])
            for m in messages:
                try:
                    event = decode(kind, m.value, m.key, list(m.headers or ()), m.timestamp)
                except DecodeError:
                    continue
                out.append(SourceRecord(kind.value, tp.partition, m.offset, event))
    return out


async def fold_topics(settings: Settings, catalog: TopicCatalog) -> Snapshot:
    return fold(await read_sources(settings, catalog))


async def group_lag(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    """Messages not yet committed by the consumer group, per topic-partition."""
    tps = await partitions_of(settings, topics)
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    consumer = AIOKafkaConsumer(**client_kwargs(settings))
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.consumer_group)
        ends = await consumer.end_offsets(tps)
        lag = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag[(tp.topic, tp.partition)] = ends[tp] - done
        return lag
    finally:
        await consumer.stop()
        await admin.close()
