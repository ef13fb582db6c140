"""Reading partitions up to their end offsets on the real broker: holes in the offsets and
partitions emptied by retention must end the read, not hang it."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.records_to_delete import RecordsToDelete

from tests.integration.conftest import SettingsFactory
from tests.integration.harness import run_cli
from tests.integration.private_services import free_port
from workers.kafka_reading import read_to_ends, reading_consumer

pytestmark = pytest.mark.integration


async def test_reads_to_the_end_offsets_past_transaction_markers_and_deleted_records(
    settings_factory: SettingsFactory,
) -> None:
    """Partition 0 was written in a transaction: its end offset is one past the commit
    marker, which no fetch returns. Partition 1's records were all deleted (as retention
    does): its log start is its end offset. Partition 2 holds plain records. The read
    yields exactly the records and ends (a check on the last record's offset waits for
    ever on partition 0)."""
    settings = settings_factory()
    topic = f"{settings.topic_prefix}reading"
    bootstrap = settings.kafka_bootstrap
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        plain = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await plain.start()
        try:
            for n in range(3):
                await plain.send_and_wait(topic, b"gone-%d" % n, partition=1)
                await plain.send_and_wait(topic, b"plain-%d" % n, partition=2)
        finally:
            await plain.stop()
        await admin.delete_records({TopicPartition(topic, 1): RecordsToDelete(before_offset=3)})
    finally:
        await admin.close()
    transactional = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"{topic}-tx", enable_idempotence=True
    )
    await transactional.start()
    try:
        async with transactional.transaction():
            for n in range(3):
                await transactional.send(topic, b"tx-%d" % n, partition=0)
    finally:
        await transactional.stop()

    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer = reading_consumer(settings, partition_fetch_bytes=1024 * 1024)
    await consumer.start()
    try:
        # The coordinator acknowledges the commit before the marker is written.
        for _ in range(100):
            ends = await consumer.end_offsets(tps)
            if ends[tps[0]] == 4:
                break
            await asyncio.sleep(0.1)
        assert [ends[tp] for tp in tps] == [4, 3, 3]  # the marker takes offset 3
        read: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
        async for tp, records in read_to_ends(consumer, tps, ends, max_records=2):
            read[tp.partition] += [r.value for r in records]
    finally:
        await consumer.stop()
    assert read == {
        0: [b"tx-0", b"tx-1", b"tx-2"],
        1: [],
        2: [b"plain-0", b"plain-1", b"plain-2"],
    }


async def test_records_removed_by_retention_during_the_read_move_it_to_the_new_log_start(
    settings_factory: SettingsFactory,
) -> None:
    """Retention removes the records the reader would fetch next: the position must reset
    to the new log start and the read go on to the end offset (with a reset to the
    latest offset, aiokafka's default, it would end there, without the rest)."""
    settings = settings_factory()
    topic = f"{settings.topic_prefix}retention"
    tp = TopicPartition(topic, 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    consumer = reading_consumer(settings, partition_fetch_bytes=1)  # a record per fetch
    await consumer.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        for n in range(10):
            await producer.send_and_wait(topic, b"%d" % n, partition=0)
        read: list[bytes] = []
        async for _, records in read_to_ends(consumer, [tp], {tp: 10}, max_records=1):
            read += [r.value for r in records]
            if len(read) == 1:
                await admin.delete_records({tp: RecordsToDelete(before_offset=6)})
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.close()
    assert read[0] == b"0" and read[-4:] == [b"6", b"7", b"8", b"9"], read
    assert read == sorted(set(read), key=int)  # in order, nothing twice


def test_verify_against_the_topics_says_when_kafka_is_unreachable(
    settings_factory: SettingsFactory,
) -> None:
    """Exit 3 and one line naming the broker, not a traceback."""
    settings = settings_factory()
    assert run_cli(settings, "db", "migrate").returncode == 0
    nowhere = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    check = run_cli(
        nowhere, "verify", "--copy", "live", "--against", "topics", "--models", "postgres"
    )
    assert check.returncode == 3, check.stderr
    assert f"Kafka at {nowhere.kafka_bootstrap} unreachable" in check.stderr
    assert "Traceback" not in check.stderr
