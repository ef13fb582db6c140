"""The replay's source reader when the broker goes away: it waits, says so, reads on."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.conftest import SettingsFactory
from tests.integration.private_kafka import PrivateKafka
from workers.replay import source
from workers.replay.plan import SourcePartition
from workers.replay.source import SourceReader

pytestmark = pytest.mark.integration


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def test_a_reader_waiting_for_a_dead_broker_says_so_and_reads_on_when_it_is_back(
    plain_kafka: PrivateKafka, settings_factory: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay waits for Kafka (it is a batch job that resumes anyway), but not in
    silence: every `WAIT_REPORT_S` without records it says what it is waiting to read,
    and once records come again it says so and returns them."""
    monkeypatch.setattr(source, "WAIT_REPORT_S", 2.0)
    settings = settings_factory(kafka_bootstrap=plain_kafka.bootstrap)
    topic = f"{settings.topic_prefix}source"
    admin = AIOKafkaAdminClient(bootstrap_servers=plain_kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    await _produce(plain_kafka.bootstrap, topic, [b"before-%d" % n for n in range(5)])
    sp = SourcePartition("reservation-created", 0, topic)
    said: list[str] = []
    reader = SourceReader(settings, [sp], on_wait=said.append)
    await reader.start()
    try:
        first = await reader.read({sp: (0, 5)})
        await asyncio.to_thread(plain_kafka.stop)
        pending = asyncio.create_task(reader.read({sp: (5, 8)}))
        for _ in range(300):
            if len(said) >= 2 or pending.done():
                break
            await asyncio.sleep(0.1)
        assert not pending.done()
        assert len(said) == 2, said
        await asyncio.to_thread(plain_kafka.start)
        await _produce(plain_kafka.bootstrap, topic, [b"after-%d" % n for n in range(3)])
        second = await asyncio.wait_for(pending, 90)
    finally:
        await reader.stop()
        if plain_kafka.proc is None:  # failed while it was down: the clean-up needs it
            await asyncio.to_thread(plain_kafka.start)
    assert [r.value for r in first[sp]] == [b"before-%d" % n for n in range(5)]
    assert [(r.offset, r.value) for r in second[sp]] == [(5 + n, b"after-%d" % n) for n in range(3)]
    # about 2 s and 4 s: when the reader notices depends on its 0.5 s polls
    waits = [int(line.split(" for ")[1].split("s ")[0]) for line in said[:2]]
    assert 2 <= waits[0] < waits[1] <= 6, said
    assert all(" while reading reservation-created/0; waiting" in line for line in said[:2])
    assert said[-1].startswith("Kafka is answering again after "), said
    assert all(line.startswith("nothing from Kafka") for line in said[:-1])
